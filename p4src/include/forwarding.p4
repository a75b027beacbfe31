/*
 * p4tap: normal forwarding. L2 by destination MAC; IPv4/IPv6 routing for
 * frames addressed to a router MAC. Nothing here reads intercept state, so
 * a packet's path and bytes are the same whether or not it is tapped.
 */
#ifndef P4TAP_FORWARDING_P4
#define P4TAP_FORWARDING_P4

#include "headers.p4"

control Forwarding(inout headers_t hdr,
                   inout local_metadata_t meta,
                   inout standard_metadata_t std_meta) {

    action drop() {
        mark_to_drop(std_meta);
    }

    action l2_forward(port_t port) {
        std_meta.egress_spec = port;
    }

    action l2_flood(mcast_group_t group) {
        std_meta.mcast_grp = group;
    }

    table l2_table {
        key = {
            hdr.ethernet.dst_addr: exact @name("dst_addr");
        }
        actions = { l2_forward; l2_flood; drop; }
        const default_action = drop();
        size = 4096;
    }

    // "My station": frames to one of these MACs are routed, not bridged.
    table router_mac {
        key = {
            hdr.ethernet.dst_addr: exact @name("dst_addr");
        }
        actions = { NoAction; }
        const default_action = NoAction();
        size = 64;
    }

    action route_v4(port_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        std_meta.egress_spec = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): an incremental update of
        // the header checksum for the TTL change. It needs no view of the
        // options, and it leaves a wrong checksum as wrong as it came.
        bit<16> old_word = hdr.ipv4.ttl ++ hdr.ipv4.protocol;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        bit<16> new_word = hdr.ipv4.ttl ++ hdr.ipv4.protocol;
        bit<32> sum = (bit<32>)(~hdr.ipv4.hdr_checksum) + (bit<32>)(~old_word)
                      + (bit<32>)new_word;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        hdr.ipv4.hdr_checksum = ~sum[15:0];
    }

    action route_v6(port_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        std_meta.egress_spec = port;
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
        size = 16384;
    }

    table ipv6_routes {
        key = {
            meta.vrf:          exact @name("vrf");
            hdr.ipv6.dst_addr: lpm   @name("dst_addr");
        }
        actions = { route_v6; drop; }
        const default_action = drop();
        size = 16384;
    }

    apply {
        if (router_mac.apply().hit) {
            // A router forwards nothing whose TTL would reach zero.
            if (meta.ip_version == 4 && hdr.ipv4.ttl > 1) {
                ipv4_routes.apply();
            } else if (meta.ip_version == 6 && hdr.ipv6.hop_limit > 1) {
                ipv6_routes.apply();
            } else {
                drop();
            }
        } else {
            l2_table.apply();
        }
    }
}

// Egress half of flooding: never send a replica back where it came from.
control FloodPrune(inout standard_metadata_t std_meta) {
    apply {
        if (std_meta.instance_type == INSTANCE_TYPE_REPLICATION
                && std_meta.egress_port == std_meta.ingress_port) {
            mark_to_drop(std_meta);
        }
    }
}

#endif
