/*
 * p4tap: the intercept classifier (RFC 3924 content IAP; one filter per
 * CISCO-IP-TAP-MIB citapStreamTable row).
 *
 * Every filter belongs to one side: the source side when it names a source
 * prefix, else the destination side when it names a destination prefix,
 * else the source side with prefix 0/0. Each side is looked up in two steps,
 * so that traffic nobody taps does not pay per installed tap (bmv2 scans
 * ternary and range tables linearly):
 *   1. gate: LPM on (VRF, the side's address). A filter opens the gate of
 *      its own prefix; a miss proves that no filter of this side can match,
 *      and the filter table is skipped.
 *   2. filter: one ternary/range entry per region of overlapping filters of
 *      the side. The controller installs intersections of overlapping filters
 *      above their parts, each naming the clone session of the union of
 *      their mediations, so the highest-priority hit is exactly the set of
 *      mediations whose filters (of this side) match the packet.
 * Splitting by side keeps the entries linear in the number of taps: a packet
 * from one tapped subject to another matches one region of each side, which
 * would otherwise need an entry for every pair of subjects.
 *
 * One clone per packet is all an ingress pass can make. When both sides
 * match, `merge` names the session of the union if the two sets share a
 * mediation (so each MD gets one copy). Otherwise the packet is cloned for
 * the source side and resubmitted; the second pass clones it for the
 * destination side and forwards it as the first pass would have. Either way
 * each copy is the packet as the subject sent it.
 */
#ifndef P4TAP_INTERCEPT_P4
#define P4TAP_INTERCEPT_P4

#include "headers.p4"

// One side of the IPv4 classifier: the source side (is_source) or the
// destination side. Each instance has its own tables and counters.
control Ipv4FilterSide(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std_meta)
                      (bool is_source) {

    ipv4_addr_t side_addr;  // the address this side's gate looks up

    // bmv2 counts every hit of the owning table's entries.
    direct_counter(CounterType.packets_and_bytes) filter_counter;

    action open_gate() { }

    action match_session(clone_session_t id) {
        if (is_source) {
            meta.src_session = id;
        } else {
            meta.dst_session = id;
        }
    }

    table gate {
        key = {
            meta.vrf:  exact @name("vrf");
            side_addr: lpm   @name("addr");
        }
        actions = { open_gate; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 32768;
    }

    table filter {
        key = {
            meta.vrf:              exact   @name("vrf");
            std_meta.ingress_port: ternary @name("ingress_port");
            hdr.ipv4.src_addr:     ternary @name("src_addr");
            hdr.ipv4.dst_addr:     ternary @name("dst_addr");
            meta.ip_proto:         ternary @name("protocol");
            meta.ip_tos:           ternary @name("tos");
            meta.l4_valid:         ternary @name("l4_valid");
            meta.l4_src_port:      range   @name("src_port");
            meta.l4_dst_port:      range   @name("dst_port");
        }
        actions = { match_session; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = filter_counter;
        size = 32768;
    }

    apply {
        side_addr = is_source ? hdr.ipv4.src_addr : hdr.ipv4.dst_addr;
        if (gate.apply().hit) {
            filter.apply();
        }
    }
}

// One side of the IPv6 classifier; adds the flow label.
control Ipv6FilterSide(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std_meta)
                      (bool is_source) {

    ipv6_addr_t side_addr;  // the address this side's gate looks up

    direct_counter(CounterType.packets_and_bytes) filter_counter;

    action open_gate() { }

    action match_session(clone_session_t id) {
        if (is_source) {
            meta.src_session = id;
        } else {
            meta.dst_session = id;
        }
    }

    table gate {
        key = {
            meta.vrf:  exact @name("vrf");
            side_addr: lpm   @name("addr");
        }
        actions = { open_gate; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 16384;
    }

    table filter {
        key = {
            meta.vrf:              exact   @name("vrf");
            std_meta.ingress_port: ternary @name("ingress_port");
            hdr.ipv6.src_addr:     ternary @name("src_addr");
            hdr.ipv6.dst_addr:     ternary @name("dst_addr");
            meta.ip_proto:         ternary @name("protocol");
            meta.ip_tos:           ternary @name("tos");
            hdr.ipv6.flow_label:   ternary @name("flow_label");
            meta.l4_valid:         ternary @name("l4_valid");
            meta.l4_src_port:      range   @name("src_port");
            meta.l4_dst_port:      range   @name("dst_port");
        }
        actions = { match_session; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = filter_counter;
        size = 16384;
    }

    apply {
        side_addr = is_source ? hdr.ipv6.src_addr : hdr.ipv6.dst_addr;
        if (gate.apply().hit) {
            filter.apply();
        }
    }
}

control InterceptClassifier(inout headers_t hdr,
                            inout local_metadata_t meta,
                            inout standard_metadata_t std_meta) {

    Ipv4FilterSide(true) ipv4_src;
    Ipv4FilterSide(false) ipv4_dst;
    Ipv6FilterSide(true) ipv6_src;
    Ipv6FilterSide(false) ipv6_dst;

    action intercept(clone_session_t session) {
        meta.intercept_session = session;
        clone_preserving_field_list(CloneType.I2E, (bit<32>)session,
                                    FIELD_LIST_INTERCEPT);
    }

    // (source set, destination set) pairs that share a mediation, mapped to
    // the session of their union.
    table merge {
        key = {
            meta.src_session: exact @name("src_session");
            meta.dst_session: exact @name("dst_session");
        }
        actions = { intercept; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 16384;
    }

    apply {
        if (std_meta.instance_type == INSTANCE_TYPE_RESUBMIT) {
            // Second pass: the copy the first pass could not make.
            intercept(meta.resubmit_session);
            return;
        }
        if (meta.ip_version == 4) {
            ipv4_src.apply(hdr, meta, std_meta);
            ipv4_dst.apply(hdr, meta, std_meta);
        } else if (meta.ip_version == 6) {
            ipv6_src.apply(hdr, meta, std_meta);
            ipv6_dst.apply(hdr, meta, std_meta);
        }

        if (meta.src_session != 0 && meta.dst_session != 0
                && meta.src_session != meta.dst_session) {
            if (!merge.apply().hit) {
                intercept(meta.src_session);
                meta.resubmit_session = meta.dst_session;
                resubmit_preserving_field_list(FIELD_LIST_RESUBMIT);
            }
        } else if (meta.src_session != 0) {
            intercept(meta.src_session);
        } else if (meta.dst_session != 0) {
            intercept(meta.dst_session);
        }
    }
}

#endif
