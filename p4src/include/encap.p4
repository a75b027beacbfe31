/*
 * p4tap: egress encapsulation of intercept copies for the mediation device
 * (RFC 3924 interface f, PacketCable/Cisco "pcli" format):
 *   outer Ethernet | outer IPv4 or IPv6 | UDP to the MD | CCCID (4 bytes) |
 *   the intercepted IP packet from its first IP byte, without L2.
 *
 * A clone session has one replica per mediation device; bmv2 hands each
 * replica's instance to egress as egress_rid, which selects that mediation's
 * CCCID and destination. No replica ever carries another mediation's ID.
 */
#ifndef P4TAP_ENCAP_P4
#define P4TAP_ENCAP_P4

#include "headers.p4"

control InterceptEncap(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std_meta) {

    direct_counter(CounterType.packets_and_bytes) encap_counter;
    // Copies lost inside the intercept path, by replica (mediation) id:
    // becomes cTap2StreamInterceptDrops.
    counter(65536, CounterType.packets) intercept_drops;

    // The intercepted packet loses its L2 header; `ethernet` becomes the
    // outer Ethernet header toward the MD's next hop.
    action rewrite_l2(mac_addr_t src_mac, mac_addr_t dst_mac, bit<16> ether_type) {
        hdr.vlan.setInvalid();
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ethernet.ether_type = ether_type;
    }

    action add_udp_pcli(bit<32> cccid, bit<16> src_port, bit<16> dst_port) {
        hdr.outer_udp.setValid();
        hdr.outer_udp.src_port = src_port;
        hdr.outer_udp.dst_port = dst_port;
        hdr.outer_udp.len = UDP_LEN + PCLI_LEN + meta.inner_len;
        hdr.outer_udp.checksum = 0;   // computed in P4tapComputeChecksum
        hdr.pcli.setValid();
        hdr.pcli.cccid = cccid;
    }

    action encap_ipv4(bit<32> cccid,
                      mac_addr_t src_mac, mac_addr_t dst_mac,
                      ipv4_addr_t src_addr, ipv4_addr_t dst_addr,
                      bit<16> src_port, bit<16> dst_port, bit<6> dscp) {
        rewrite_l2(src_mac, dst_mac, ETHERTYPE_IPV4);
        hdr.outer_ipv4.setValid();
        hdr.outer_ipv4.version = 4;
        hdr.outer_ipv4.ihl = 5;
        hdr.outer_ipv4.tos = dscp ++ 2w0;
        hdr.outer_ipv4.total_len = IPV4_MIN_LEN + UDP_LEN + PCLI_LEN + meta.inner_len;
        hdr.outer_ipv4.identification = 0;
        hdr.outer_ipv4.flags = 0b010;    // DF: never fragment evidence
        hdr.outer_ipv4.frag_offset = 0;
        hdr.outer_ipv4.ttl = OUTER_HOP_LIMIT;
        hdr.outer_ipv4.protocol = IP_PROTO_UDP;
        hdr.outer_ipv4.hdr_checksum = 0; // computed in P4tapComputeChecksum
        hdr.outer_ipv4.src_addr = src_addr;
        hdr.outer_ipv4.dst_addr = dst_addr;
        add_udp_pcli(cccid, src_port, dst_port);
        // Cut any Ethernet padding that trailed the original IP packet.
        truncate((bit<32>)(ETHERNET_LEN + IPV4_MIN_LEN + UDP_LEN + PCLI_LEN
                           + meta.inner_len));
    }

    action encap_ipv6(bit<32> cccid,
                      mac_addr_t src_mac, mac_addr_t dst_mac,
                      ipv6_addr_t src_addr, ipv6_addr_t dst_addr,
                      bit<16> src_port, bit<16> dst_port, bit<6> dscp) {
        rewrite_l2(src_mac, dst_mac, ETHERTYPE_IPV6);
        hdr.outer_ipv6.setValid();
        hdr.outer_ipv6.version = 6;
        hdr.outer_ipv6.traffic_class = dscp ++ 2w0;
        hdr.outer_ipv6.flow_label = 0;
        hdr.outer_ipv6.payload_len = UDP_LEN + PCLI_LEN + meta.inner_len;
        hdr.outer_ipv6.next_hdr = IP_PROTO_UDP;
        hdr.outer_ipv6.hop_limit = OUTER_HOP_LIMIT;
        hdr.outer_ipv6.src_addr = src_addr;
        hdr.outer_ipv6.dst_addr = dst_addr;
        add_udp_pcli(cccid, src_port, dst_port);
        truncate((bit<32>)(ETHERNET_LEN + IPV6_LEN + UDP_LEN + PCLI_LEN
                           + meta.inner_len));
    }

    action drop_copy() {
        intercept_drops.count((bit<32>)std_meta.egress_rid);
        mark_to_drop(std_meta);
    }

    table intercept_encap {
        key = {
            std_meta.egress_rid: exact @name("replica");
        }
        actions = { encap_ipv4; encap_ipv6; @defaultonly drop_copy; }
        const default_action = drop_copy();
        counters = encap_counter;
        size = 65536;
    }

    apply {
        // The intercepted packet is the IP packet as it arrived: its own
        // length field, bounded by the bytes that actually arrived. Written
        // into meta.inner_len step by step, without locals: bmv2 zeroes
        // every local of the program for every packet, copy or not.
        meta.inner_len = (bit<16>)std_meta.packet_length - ETHERNET_LEN;
        if (hdr.vlan.isValid()) {
            meta.inner_len = meta.inner_len - VLAN_LEN;
        }
        // Header validity, not meta.ip_version: bmv2 resets user metadata
        // after re-parsing a clone, keeping only the preserved field list.
        if (hdr.ipv4.isValid()) {
            if (hdr.ipv4.total_len < meta.inner_len) {
                meta.inner_len = hdr.ipv4.total_len;
            }
        } else if (hdr.ipv6.isValid()) {
            if (IPV6_LEN + hdr.ipv6.payload_len < meta.inner_len) {
                meta.inner_len = IPV6_LEN + hdr.ipv6.payload_len;
            }
        }
        intercept_encap.apply();
    }
}

#endif
