/*
 * p4tap on v1model: the deparser. headers_t's field order is the emission
 * order (see headers.p4), the same on every target.
 */
#ifndef P4TAP_V1MODEL_DEPARSER_P4
#define P4TAP_V1MODEL_DEPARSER_P4

#include "../include/headers.p4"

control P4tapDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr);
    }
}

#endif
