/*
 * p4tap: constants and type aliases shared by every control and target.
 * Each target's arch.p4 comes first and adds what differs between them.
 */
#ifndef P4TAP_DEFINES_P4
#define P4TAP_DEFINES_P4

typedef bit<9>   port_t;
typedef bit<48>  mac_addr_t;
typedef bit<32>  ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<16>  vrf_id_t;
typedef bit<16>  mcast_group_t;     // program groups stay below 32768 (bmv2 keeps the rest for clones)
// clone_session_t and priority_t are the architecture's (p4src/<arch>/arch.p4).

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86dd;
const bit<16> ETHERTYPE_VLAN = 0x8100;

const bit<8> IP_PROTO_TCP = 6;
const bit<8> IP_PROTO_UDP = 17;

// Sizes of the fixed headers an intercept copy gains (bytes).
const bit<16> ETHERNET_LEN   = 14;
const bit<16> VLAN_LEN       = 4;
const bit<16> IPV4_MIN_LEN   = 20;
const bit<16> IPV6_LEN       = 40;
const bit<16> UDP_LEN        = 8;
const bit<16> PCLI_LEN       = 4;
const bit<8>  OUTER_HOP_LIMIT = 64;

#endif
