/*
 * p4tap: normal forwarding. L2 by destination MAC; IPv4/IPv6 routing for
 * frames addressed to a router MAC (bridging tells which). Nothing here
 * reads intercept state, so a packet's path and bytes are the same whether
 * or not it is tapped.
 */
#ifndef P4TAP_FORWARDING_P4
#define P4TAP_FORWARDING_P4

#include "headers.p4"

// Bridging runs first and for every packet: one exact lookup on the
// destination MAC, which also tells a frame for the router (my station) from
// one to bridge. Every table a packet passes costs bmv2 alike, whatever its
// size, so untapped bridged traffic sees this table and the intercept gates
// and nothing more (the VRF is looked up only when something needs it).
control Bridging(inout headers_t hdr,
                 inout local_metadata_t meta) {

    action drop() {
        meta.egress_port = DROP_PORT;
        meta.mcast_grp = 0;
    }

    action l2_forward(port_t port) {
        meta.egress_port = port;
    }

    action l2_flood(mcast_group_t group) {
        meta.mcast_grp = group;
    }

    // "My station": the frame is addressed to the router; Routing decides.
    action to_router() {
        meta.routed = 1;
    }

    table l2_table {
        key = {
            hdr.ethernet.dst_addr: exact @name("dst_addr");
        }
        actions = { l2_forward; l2_flood; to_router; drop; }
        const default_action = drop();
        size = P4TAP_L2_SIZE;
    }

    apply {
        l2_table.apply();
    }
}

// IPv4/IPv6 routing of frames Bridging handed to the router, in their VRF.
control Routing(inout headers_t hdr,
                inout local_metadata_t meta) {

    action drop() {
        meta.egress_port = DROP_PORT;
        meta.mcast_grp = 0;
    }

    action route_v4(port_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        meta.egress_port = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for the TTL byte of the
        // word m = TTL|protocol: m' = m - 0x0100, so ~m + m' = 0xFEFF.
        // Incremental, so it needs no view of the options and leaves a wrong
        // checksum as wrong as it came (see P4TAP_IPV4_CSUM_ADJUST).
        P4TAP_IPV4_CSUM_ADJUST(16w0xFEFF);
    }

    action route_v6(port_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        meta.egress_port = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ipv6.hop_limit = hdr.ipv6.hop_limit - 1;
    }

    table ipv4_routes {
        key = {
            meta.vrf:          exact @name("vrf");
            hdr.ipv4.dst_addr: lpm   @name("dst_addr");
        }
        actions = { route_v4; drop; }
        const default_action = drop();
        size = P4TAP_IPV4_ROUTES_SIZE;
    }

    table ipv6_routes {
        key = {
            meta.vrf:          exact @name("vrf");
            hdr.ipv6.dst_addr: lpm   @name("dst_addr");
        }
        actions = { route_v6; drop; }
        const default_action = drop();
        size = P4TAP_IPV6_ROUTES_SIZE;
    }

    apply {
        // A router forwards nothing whose TTL would reach zero.
        if (meta.ip_version == 4 && hdr.ipv4.ttl > 1) {
            ipv4_routes.apply();
        } else if (meta.ip_version == 6 && hdr.ipv6.hop_limit > 1) {
            ipv6_routes.apply();
        } else {
            drop();
        }
    }
}

#endif
