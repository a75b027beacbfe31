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
        // Here rather than in ingress: a parser assignment costs bmv2 no
        // table lookup. A resubmitted packet has port 0 here; P4tapIngress
        // gives it back the first pass's.
        meta.ingress_port = std_meta.ingress_port;
        transition parse_ethernet;
    }

#include "../include/parser_states.p4"
}

#endif
