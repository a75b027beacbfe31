/*
 * p4tap on v1model: the parser. bmv2 re-parses an I2E clone with this same
 * parser (before it sets instance_type), so a copy arrives in egress with
 * the same headers as the packet it was made from.
 */
#ifndef P4TAP_V1MODEL_PARSER_P4
#define P4TAP_V1MODEL_PARSER_P4

#include "../include/headers.p4"

parser P4tapParser(packet_in packet,
                   out headers_t hdr,
                   inout local_metadata_t meta,
                   inout standard_metadata_t std_meta) {

    state start {
        transition parse_ethernet;
    }

#include "../include/parser_states.p4"
}

#endif
