/*
 * p4tap: the intercept classifier (RFC 3924 content IAP; one filter per
 * CISCO-IP-TAP-MIB citapStreamTable row).
 *
 * Every filter belongs to one side: the source side when it names a source
 * prefix, else the destination side when it names a destination prefix,
 * else the source side with prefix 0/0. Each side is looked up in two steps,
 * so that traffic nobody taps does not pay per installed tap (bmv2 scans
 * ternary and range tables linearly):
 *   1. gate (InterceptGates): LPM on the side's address, in every VRF at
 *      once. A filter opens the gate of its own prefix; a miss proves that
 *      no filter of this side can match. Untapped traffic stops here, before
 *      even its VRF is looked up.
 *   2. filter (InterceptFilters): one ternary/range entry per region of
 *      overlapping filters of the side, keyed on the VRF too. The controller
 *      installs intersections of overlapping filters above their parts, each
 *      naming the clone session of the union of their mediations, so the
 *      highest-priority hit is exactly the set of mediations whose filters
 *      (of this side) match the packet.
 * Splitting by side keeps the entries linear in the number of taps: a packet
 * from one tapped subject to another matches one region of each side, which
 * would otherwise need an entry for every pair of subjects.
 *
 * One clone per packet is all an ingress pass can make. When both sides
 * match, `merge` names the session of the union if the two sets share a
 * mediation (so each MD gets one copy). Otherwise the packet is cloned for
 * the source side and resubmitted; the second pass, with the first pass's
 * ingress port, clones it for the destination side and forwards and
 * conditions (ETS) it as an untapped packet. Either way each copy is the
 * packet as the subject sent it.
 *
 * Filters run after forwarding, so they also key on where the packet goes
 * (egress port, flood group): an interface filter (citapStreamInterface,
 * "received or transmitted") matches traffic in on its port or out by it.
 */
#ifndef P4TAP_INTERCEPT_P4
#define P4TAP_INTERCEPT_P4

#include "headers.p4"

// The gate of one side of one address family: the source side (is_source)
// or the destination side. Each instance has its own table.
control Ipv4Gate(inout headers_t hdr,
                 inout local_metadata_t meta)
                (bool is_source) {

    action open_gate() {
        if (is_source) {
            meta.src_gate_open = 1;
        } else {
            meta.dst_gate_open = 1;
        }
    }

    table gate {
        key = {
            (is_source ? hdr.ipv4.src_addr : hdr.ipv4.dst_addr): lpm @name("addr");
        }
        actions = { open_gate; @defaultonly NoAction; }
        const default_action = NoAction();
        size = P4TAP_IPV4_GATE_SIZE;
    }

    apply {
        gate.apply();
    }
}

control Ipv6Gate(inout headers_t hdr,
                 inout local_metadata_t meta)
                (bool is_source) {

    action open_gate() {
        if (is_source) {
            meta.src_gate_open = 1;
        } else {
            meta.dst_gate_open = 1;
        }
    }

    table gate {
        key = {
            (is_source ? hdr.ipv6.src_addr : hdr.ipv6.dst_addr): lpm @name("addr");
        }
        actions = { open_gate; @defaultonly NoAction; }
        const default_action = NoAction();
        size = P4TAP_IPV6_GATE_SIZE;
    }

    apply {
        gate.apply();
    }
}

// The filters of one side of the IPv4 classifier, behind its open gate.
control Ipv4Filter(inout headers_t hdr,
                   inout local_metadata_t meta)
                  (bool is_source) {

    // Every hit of the owning table's entries.
    P4TAP_DIRECT_COUNTER(filter_counter);

    action match_session(clone_session_t id) {
        P4TAP_DIRECT_COUNT(filter_counter);
        if (is_source) {
            meta.src_session = id;
        } else {
            meta.dst_session = id;
        }
    }

    // A packet without ports (not TCP or UDP, or a non-first fragment) leaves
    // l4_ports invalid and its fields unspecified: every entry that narrows
    // a port range also asks for l4_valid, and the full range matches any.
    // egress_port and mcast_grp are what forwarding (which runs first) chose:
    // an interface filter also matches what leaves by its port, unicast
    // (egress_spec, mcast_grp 0) or flooded (the flood group's mcast_grp).
    table filter {
        key = {
            meta.vrf:               exact   @name("vrf");
            meta.ingress_port:     ternary @name("ingress_port");
            meta.egress_port:      ternary @name("egress_port");
            meta.mcast_grp:        ternary @name("mcast_grp");
            hdr.ipv4.src_addr:      ternary @name("src_addr");
            hdr.ipv4.dst_addr:      ternary @name("dst_addr");
            hdr.ipv4.protocol:      ternary @name("protocol");
            hdr.ipv4.tos:           ternary @name("tos");
            hdr.l4_ports.isValid(): ternary @name("l4_valid");
            hdr.l4_ports.src_port:  range   @name("src_port");
            hdr.l4_ports.dst_port:  range   @name("dst_port");
        }
        actions = { match_session; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = filter_counter;
        size = P4TAP_IPV4_FILTER_SIZE;
    }

    apply {
        filter.apply();
    }
}

// The filters of one side of the IPv6 classifier; adds the flow label.
control Ipv6Filter(inout headers_t hdr,
                   inout local_metadata_t meta)
                  (bool is_source) {

    P4TAP_DIRECT_COUNTER(filter_counter);

    action match_session(clone_session_t id) {
        P4TAP_DIRECT_COUNT(filter_counter);
        if (is_source) {
            meta.src_session = id;
        } else {
            meta.dst_session = id;
        }
    }

    table filter {
        key = {
            meta.vrf:               exact   @name("vrf");
            meta.ingress_port:     ternary @name("ingress_port");
            meta.egress_port:      ternary @name("egress_port");
            meta.mcast_grp:        ternary @name("mcast_grp");
            hdr.ipv6.src_addr:      ternary @name("src_addr");
            hdr.ipv6.dst_addr:      ternary @name("dst_addr");
            hdr.ipv6.next_hdr:      ternary @name("protocol");
            hdr.ipv6.traffic_class: ternary @name("tos");
            hdr.ipv6.flow_label:    ternary @name("flow_label");
            hdr.l4_ports.isValid(): ternary @name("l4_valid");
            hdr.l4_ports.src_port:  range   @name("src_port");
            hdr.l4_ports.dst_port:  range   @name("dst_port");
        }
        actions = { match_session; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = filter_counter;
        size = P4TAP_IPV6_FILTER_SIZE;
    }

    apply {
        filter.apply();
    }
}

// Step 1 for every packet: which sides' gates are open.
control InterceptGates(inout headers_t hdr,
                       inout local_metadata_t meta) {

    Ipv4Gate(true) ipv4_src_gate;
    Ipv4Gate(false) ipv4_dst_gate;
    Ipv6Gate(true) ipv6_src_gate;
    Ipv6Gate(false) ipv6_dst_gate;

    apply {
        if (meta.ip_version == 4) {
            ipv4_src_gate.apply(hdr, meta);
            ipv4_dst_gate.apply(hdr, meta);
        } else if (meta.ip_version == 6) {
            ipv6_src_gate.apply(hdr, meta);
            ipv6_dst_gate.apply(hdr, meta);
        }
    }
}

// Step 2, only behind an open gate (and with the VRF known): the filters,
// then the clone(s).
control InterceptClassifier(inout headers_t hdr,
                            inout local_metadata_t meta) {

    Ipv4Filter(true) ipv4_src;
    Ipv4Filter(false) ipv4_dst;
    Ipv6Filter(true) ipv6_src;
    Ipv6Filter(false) ipv6_dst;

    // The copy itself is the top file's to make (clone on bmv2, mirror on
    // Tofino): a non-zero meta.intercept_session at the end of ingress asks
    // for it.
    action intercept(clone_session_t session) {
        meta.intercept_session = session;
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
        size = P4TAP_MERGE_SIZE;
    }

    apply {
        if (meta.ip_version == 4) {
            if (meta.src_gate_open == 1) {
                ipv4_src.apply(hdr, meta);
            }
            if (meta.dst_gate_open == 1) {
                ipv4_dst.apply(hdr, meta);
            }
        } else {
            if (meta.src_gate_open == 1) {
                ipv6_src.apply(hdr, meta);
            }
            if (meta.dst_gate_open == 1) {
                ipv6_dst.apply(hdr, meta);
            }
        }

        if (meta.src_session != 0 && meta.dst_session != 0
                && meta.src_session != meta.dst_session) {
            if (!merge.apply().hit) {
                intercept(meta.src_session);
                // A non-zero resubmit_session on a first pass asks the top
                // file to resubmit the packet.
                meta.resubmit_session = meta.dst_session;
            }
        } else if (meta.src_session != 0) {
            intercept(meta.src_session);
        } else if (meta.dst_session != 0) {
            intercept(meta.dst_session);
        }
    }
}

// The second pass of a resubmitted packet: the copy the first pass could
// not make (the packet is forwarded as the first pass would have). The top
// file has given it the first pass's ingress port (meta.ingress_port), so it
// takes that port's VRF, ETS trust and meter, and flood pruning.
control InterceptResubmitted(inout local_metadata_t meta) {
    apply {
        meta.intercept_session = meta.resubmit_session;
    }
}

#endif
