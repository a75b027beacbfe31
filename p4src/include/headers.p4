/*
 * p4tap: packet headers and the metadata the controls share.
 */
#ifndef P4TAP_HEADERS_P4
#define P4TAP_HEADERS_P4

#include "defines.p4"
#include "sizes.p4"

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header vlan_t {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> ether_type;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<8>      tos;          // DSCP (6 bits) + ECN (2 bits)
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

// IPv4 options: up to 40 bytes (ihl 6..15), carried opaquely so that
// L4 is found at the right offset and the packet is re-emitted unchanged.
header ipv4_options_t {
    varbit<320> data;
}

header ipv6_t {
    bit<4>      version;
    bit<8>      traffic_class;
    bit<20>     flow_label;
    bit<16>     payload_len;
    bit<8>      next_hdr;
    bit<8>      hop_limit;
    ipv6_addr_t src_addr;
    ipv6_addr_t dst_addr;
}

// TCP and UDP both begin with the ports: one header for both, so that the
// classifier keys on one pair of fields whichever protocol carried them.
header l4_ports_t {
    bit<16> src_port;
    bit<16> dst_port;
}

// The rest of a TCP header (sequence number to urgent pointer; options stay
// in the payload) and of a UDP header. Nothing reads them, so each is one
// opaque field: bmv2 pays for every field it extracts, on every packet.
header tcp_rest_t {
    bit<128> seq_to_urgent;
}

header udp_rest_t {
    bit<32> len_checksum;
}

// A UDP header p4tap builds (the copy's, toward the MD).
header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> len;
    bit<16> checksum;
}

// PacketCable / Cisco content delivery header (Wireshark "pcli"): the
// Call Content Connection ID, i.e. the intercept's cTap2MediationContentId.
header pcli_t {
    bit<32> cccid;
}

// The controller's clock probe (README, "Lifetime in the data plane"): every
// packet-out is one, and the pipeline answers it to the CPU port alone with
// a packet-in carrying its clock as egress compares it with an expiry.
@controller_header("packet_out")
header packet_out_t {
    bit<8> probe;     // any value: the pipeline reads nothing of a probe
}

@controller_header("packet_in")
header packet_in_t {
    bit<32> now;      // the switch clock, in ticks (meta.now)
    bit<32> tick_ns;  // how long a tick is on this target
}

/*
 * Header order is emission order. An intercept copy re-uses `ethernet` as
 * its outer Ethernet header, drops `vlan`, and gains outer_ipv4|outer_ipv6,
 * outer_udp and pcli in front of the untouched original IP packet.
 */
struct headers_t {
    P4TAP_ARCH_HEADERS     // what a target carries between its gresses (TNA: bridged, mirror)
    packet_out_t   packet_out;   // only on the CPU port, never emitted
    packet_in_t    packet_in;    // only toward the CPU port
    ethernet_t     ethernet;
    vlan_t         vlan;
    ipv4_t         outer_ipv4;
    ipv6_t         outer_ipv6;
    udp_t          outer_udp;
    pcli_t         pcli;
    ipv4_t         ipv4;
    ipv4_options_t ipv4_options;
    ipv6_t         ipv6;
    l4_ports_t     l4_ports;
    tcp_rest_t     tcp_rest;
    udp_rest_t     udp_rest;
}

// Every field here is zeroed by bmv2 for every packet, so each one costs
// untapped traffic too: keep this struct to what the controls must share.
struct local_metadata_t {
    // Set by the parser: 4 or 6 for a well-formed IP header, else 0.
    bit<4>   ip_version;
    bit<1>   routed;          // addressed to a router MAC (bridging decides)
    bit<1>   src_gate_open;   // a source-side filter may match (see intercept.p4)
    bit<1>   dst_gate_open;   // a destination-side filter may match

    vrf_id_t vrf;             // routing context of the ingress port / VLAN

    // Mediation sets matched by the source-side and destination-side
    // filters (as clone sessions; 0 = none).
    clone_session_t src_session;
    clone_session_t dst_session;

    // Non-zero only on intercept copies: the clone session that made them.
    // Egress encapsulates a copy only when this survived the clone, so an
    // I2E clone made for any other purpose is never sent to an MD.
    P4TAP_KEPT_ON_CLONE
    clone_session_t intercept_session;

    // The second clone a resubmitted packet owes (see intercept.p4).
    P4TAP_KEPT_ON_RESUBMIT
    clone_session_t resubmit_session;

    bit<16>  inner_len;       // egress: bytes of the intercepted IP packet

    bit<1>   ets_capped;      // an ETS mark within the port's cap: meter it
    bit<2>   ets_color;       // ETS cap meter: 0 green (within), else over

    // What the controls read and write of the switch, as plain fields: each
    // target's top file (p4src/<arch>/p4tap.p4) fills them from its
    // intrinsic metadata and hands them back, so no control names an
    // architecture's structs. Ingress:
    port_t        ingress_port;  // the port the packet came in by (both passes)
    bit<1>        resubmitted;   // this is the second pass of a resubmitted packet
    port_t        egress_port;   // unicast destination; DROP_PORT: dropped
    mcast_group_t mcast_grp;     // flood group, 0 for none
    priority_t    priority;      // egress queue (ETS)
    // Egress, intercept copies only:
    bit<16>       replica;       // which mediation device's copy (egress rid)
    bit<1>        drop_copy;     // a copy nobody wants: the top file drops it
    // The switch clock in ticks (a 32-bit slice of the target's timestamp,
    // arch.p4: P4TAP_TICK_NS); the encapsulation turns it into what is left
    // of the copy's mediation's lifetime, negative (top bit set) once the
    // clock is past its last tick. One field for both: bmv2 zeroes each
    // field here for every packet.
    bit<32>       now;

    P4TAP_ARCH_METADATA       // what one target alone needs (its arch.p4 says what)
}

#endif
