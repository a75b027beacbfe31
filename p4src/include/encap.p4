/*
 * p4tap: egress encapsulation of intercept copies for the mediation device
 * (RFC 3924 interface f, PacketCable/Cisco "pcli" format):
 *   outer Ethernet | outer IPv4 or IPv6 | UDP to the MD | CCCID (4 bytes) |
 *   the intercepted IP packet from its first IP byte, without L2.
 *
 * A clone session (bmv2) or a mirror session's multicast group (Tofino) has
 * one replica per mediation device; the top file hands each replica's id
 * (egress_rid on both) over as meta.replica, which selects that mediation's
 * CCCID and destination. No replica ever carries another mediation's ID.
 *
 * Each entry also carries its mediation's last tick: the last value of the
 * switch clock (meta.now, which the top file fills) at which a copy may
 * still leave. A copy made later is dropped here, whether or not the
 * controller is alive to remove the entry (README, "Lifetime in the data
 * plane"). The comparison is modulo 2^32 ticks (the sign of last - now),
 * so it is right while the last tick is less than 2^31 ticks away: the
 * controller writes min(Timeout, lease end), never further than that.
 */
#ifndef P4TAP_ENCAP_P4
#define P4TAP_ENCAP_P4

#include "headers.p4"

control InterceptEncap(inout headers_t hdr,
                       inout local_metadata_t meta) {

    P4TAP_DIRECT_COUNTER(encap_counter);
    // Copies lost inside the intercept path, by replica (mediation) id:
    // becomes cTap2StreamInterceptDrops.
    P4TAP_PACKET_COUNTER(intercept_drops, P4TAP_REPLICAS);
    // Copies not sent because their mediation's lifetime had run out in the
    // data plane (past its Timeout or lease): by replica id.
    P4TAP_PACKET_COUNTER(expired_copies, P4TAP_REPLICAS);

    // The intercepted packet loses its L2 header; `ethernet` becomes the
    // outer Ethernet header toward the MD's next hop.
    action rewrite_l2(mac_addr_t src_mac, mac_addr_t dst_mac, bit<16> ether_type) {
        hdr.vlan.setInvalid();
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.ethernet.ether_type = ether_type;
    }

    // What is left of the mediation's lifetime, in ticks, in place of the
    // clock: negative once past it. A subtraction in the action, a test of
    // the top bit outside: a Tofino gateway compares a field only with a constant.
    @hidden action time_left(bit<32> last_tick) {
        meta.now = last_tick - meta.now;
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
                      bit<16> src_port, bit<16> dst_port, bit<6> dscp,
                      bit<32> last_tick) {
        P4TAP_DIRECT_COUNT(encap_counter);
        time_left(last_tick);
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
        P4TAP_TRUNCATE((ETHERNET_LEN + IPV4_MIN_LEN + UDP_LEN + PCLI_LEN
                           + meta.inner_len));
    }

    action encap_ipv6(bit<32> cccid,
                      mac_addr_t src_mac, mac_addr_t dst_mac,
                      ipv6_addr_t src_addr, ipv6_addr_t dst_addr,
                      bit<16> src_port, bit<16> dst_port, bit<6> dscp,
                      bit<32> last_tick) {
        P4TAP_DIRECT_COUNT(encap_counter);
        time_left(last_tick);
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
        P4TAP_TRUNCATE((ETHERNET_LEN + IPV6_LEN + UDP_LEN + PCLI_LEN
                           + meta.inner_len));
    }

    // A miss: the copy's mediation is gone (or never was). Counted below,
    // outside the table: Tofino addresses every indirect extern of a table
    // the same way in all its actions, and the encap actions count nothing.
    action drop_copy() {
        meta.drop_copy = 1;
    }

    // The IP packet's own length unless fewer bytes arrived: a minimum
    // inside an action, which Tofino's ALU computes (its gateways compare a
    // field only with a constant, never with another field).
    @hidden action bound_by_ipv4() {
        meta.inner_len = (hdr.ipv4.total_len < meta.inner_len) ? hdr.ipv4.total_len : meta.inner_len;
    }

    // On the payload: meta.inner_len holds what arrived beyond the fixed
    // header here (one ALU operation per field and action on Tofino).
    @hidden action bound_by_ipv6() {
        meta.inner_len = (hdr.ipv6.payload_len < meta.inner_len) ? hdr.ipv6.payload_len : meta.inner_len;
    }

    table intercept_encap {
        key = {
            meta.replica: exact @name("replica");
        }
        actions = { encap_ipv4; encap_ipv6; @defaultonly drop_copy; }
        const default_action = drop_copy();
        counters = encap_counter;
        size = P4TAP_REPLICAS;
    }

    // The top file sets meta.replica, and meta.inner_len to the length of
    // the frame as it arrived (0xFFFF where the target cannot say).
    apply {
        // The intercepted packet is the IP packet as it arrived: its own
        // length field, bounded by the bytes that actually arrived. Written
        // into meta.inner_len step by step, without locals: bmv2 zeroes
        // every local of the program for every packet, copy or not.
        meta.inner_len = meta.inner_len - ETHERNET_LEN;
        if (hdr.vlan.isValid()) {
            meta.inner_len = meta.inner_len - VLAN_LEN;
        }
        // Header validity, not meta.ip_version: bmv2 resets user metadata
        // after re-parsing a clone, keeping only the preserved field list.
        if (hdr.ipv4.isValid()) {
            bound_by_ipv4();
        } else if (hdr.ipv6.isValid()) {
            meta.inner_len = meta.inner_len - IPV6_LEN;
            bound_by_ipv6();
            meta.inner_len = meta.inner_len + IPV6_LEN;
        }
        intercept_encap.apply();
        if (meta.drop_copy == 1) {
            P4TAP_COUNT(intercept_drops, meta.replica);
        } else if (meta.now[31:31] == 1) {   // ticks left, since the encapsulation
            meta.drop_copy = 1;
            P4TAP_COUNT(expired_copies, meta.replica);
        }
    }
}

#endif
