/*
 * p4tap on v1model: checksums. Only headers p4tap builds get a computed checksum;
 * a forwarded packet's own checksums are left exactly as they arrived
 * (routing adjusts the IPv4 one incrementally).
 */
#ifndef P4TAP_CHECKSUM_P4
#define P4TAP_CHECKSUM_P4

#include "../include/headers.p4"

control P4tapVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    // A transparent tap never drops for a bad checksum.
    apply { }
}

control P4tapComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        update_checksum(hdr.outer_ipv4.isValid(),
            { hdr.outer_ipv4.version, hdr.outer_ipv4.ihl, hdr.outer_ipv4.tos,
              hdr.outer_ipv4.total_len, hdr.outer_ipv4.identification,
              hdr.outer_ipv4.flags, hdr.outer_ipv4.frag_offset,
              hdr.outer_ipv4.ttl, hdr.outer_ipv4.protocol,
              hdr.outer_ipv4.src_addr, hdr.outer_ipv4.dst_addr },
            hdr.outer_ipv4.hdr_checksum, HashAlgorithm.csum16);

        // UDP checksums over pseudo-header, UDP header, CCCID and the whole
        // intercepted packet. bmv2 leaves the fields of invalid headers out
        // of a checksum, so one list covers every inner header stack; what
        // follows the parsed headers is the payload.
        update_checksum_with_payload(hdr.outer_ipv4.isValid(),
            { hdr.outer_ipv4.src_addr, hdr.outer_ipv4.dst_addr,
              8w0, hdr.outer_ipv4.protocol, hdr.outer_udp.len,
              hdr.outer_udp.src_port, hdr.outer_udp.dst_port, hdr.outer_udp.len,
              hdr.pcli.cccid,
              hdr.ipv4, hdr.ipv4_options, hdr.ipv6, hdr.l4_ports, hdr.tcp_rest, hdr.udp_rest },
            hdr.outer_udp.checksum, HashAlgorithm.csum16);

        update_checksum_with_payload(hdr.outer_ipv6.isValid(),
            { hdr.outer_ipv6.src_addr, hdr.outer_ipv6.dst_addr,
              16w0, hdr.outer_udp.len, 24w0, hdr.outer_ipv6.next_hdr,
              hdr.outer_udp.src_port, hdr.outer_udp.dst_port, hdr.outer_udp.len,
              hdr.pcli.cccid,
              hdr.ipv4, hdr.ipv4_options, hdr.ipv6, hdr.l4_ports, hdr.tcp_rest, hdr.udp_rest },
            hdr.outer_udp.checksum, HashAlgorithm.csum16);
    }
}

#endif
