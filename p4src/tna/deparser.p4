/*
 * p4tap on TNA: the deparsers. headers_t's field order is the emission
 * order (see headers.p4); its first fields are the bridged and mirror
 * headers, valid only between the gresses.
 */
#ifndef P4TAP_TNA_DEPARSER_P4
#define P4TAP_TNA_DEPARSER_P4

#include "../include/headers.p4"

control P4tapIngressDeparser(packet_out packet,
                             inout headers_t hdr,
                             in local_metadata_t meta,
                             in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    Mirror() mirror;
    Resubmit() resubmit;
    Checksum() ipv4_checksum;

    apply {
        if (meta.ipv4_rewritten == 1) {
            hdr.ipv4.hdr_checksum = ipv4_checksum.update({
                hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.tos,
                hdr.ipv4.total_len, hdr.ipv4.identification,
                hdr.ipv4.flags, hdr.ipv4.frag_offset,
                hdr.ipv4.ttl, hdr.ipv4.protocol,
                hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.ipv4_options.data });
        }
        if (ig_dprsr_md.mirror_type == MIRROR_TYPE_INTERCEPT) {
            mirror.emit<mirror_h>(meta.intercept_session,
                                  {meta.mirror_pkt_type, 0, meta.intercept_session});
        }
        if (ig_dprsr_md.resubmit_type == RESUBMIT_TYPE_INTERCEPT) {
            resubmit.emit<resubmit_h>({0, meta.resubmit_session, 0});
        }
        packet.emit(hdr);
    }
}

// The outer IPv4 header of a copy gets its checksum here. The outer UDP
// checksum stays 0: Tofino cannot sum a payload it does not parse (allowed
// for IPv4; over IPv6 the MD must accept zero-checksum UDP, RFC 6935/6936).
control P4tapEgressDeparser(packet_out packet,
                            inout headers_t hdr,
                            in local_metadata_t meta,
                            in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    Checksum() outer_ipv4_checksum;

    apply {
        if (hdr.outer_ipv4.isValid()) {
            hdr.outer_ipv4.hdr_checksum = outer_ipv4_checksum.update({
                hdr.outer_ipv4.version, hdr.outer_ipv4.ihl, hdr.outer_ipv4.tos,
                hdr.outer_ipv4.total_len, hdr.outer_ipv4.identification,
                hdr.outer_ipv4.flags, hdr.outer_ipv4.frag_offset,
                hdr.outer_ipv4.ttl, hdr.outer_ipv4.protocol,
                hdr.outer_ipv4.src_addr, hdr.outer_ipv4.dst_addr });
        }
        packet.emit(hdr);
    }
}

#endif
