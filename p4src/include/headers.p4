/*
 * p4tap: packet headers and the metadata the controls share.
 */
#ifndef P4TAP_HEADERS_P4
#define P4TAP_HEADERS_P4

#include "defines.p4"

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

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  reserved;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

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

/*
 * Header order is emission order. An intercept copy re-uses `ethernet` as
 * its outer Ethernet header, drops `vlan`, and gains outer_ipv4|outer_ipv6,
 * outer_udp and pcli in front of the untouched original IP packet.
 */
struct headers_t {
    ethernet_t     ethernet;
    vlan_t         vlan;
    ipv4_t         outer_ipv4;
    ipv6_t         outer_ipv6;
    udp_t          outer_udp;
    pcli_t         pcli;
    ipv4_t         ipv4;
    ipv4_options_t ipv4_options;
    ipv6_t         ipv6;
    tcp_t          tcp;
    udp_t          udp;
}

struct local_metadata_t {
    // Set by the parser from whichever IP header the packet carries, so that
    // the classifier and forwarding read one field, not two.
    bit<4>   ip_version;      // 4 or 6 for a well-formed IP header, else 0
    bit<8>   ip_proto;        // IPv4 protocol / IPv6 next header
    bit<8>   ip_tos;          // IPv4 TOS byte / IPv6 traffic class
    bit<1>   l4_valid;        // a TCP or UDP header was parsed
    bit<16>  l4_src_port;
    bit<16>  l4_dst_port;

    vrf_id_t vrf;             // routing context of the ingress port / VLAN

    // Mediation sets matched by the source-side and destination-side
    // filters (as clone sessions; 0 = none).
    clone_session_t src_session;
    clone_session_t dst_session;

    // Non-zero only on intercept copies: the clone session that made them.
    // Egress encapsulates a copy only when this survived the clone, so an
    // I2E clone made for any other purpose is never sent to an MD.
    @field_list(FIELD_LIST_INTERCEPT)
    clone_session_t intercept_session;

    // The second clone a resubmitted packet owes (see intercept.p4).
    @field_list(FIELD_LIST_RESUBMIT)
    clone_session_t resubmit_session;

    bit<16>  inner_len;       // egress: bytes of the intercepted IP packet
}

#endif
