/*
 * p4tap: constants and type aliases shared by every control and target.
 */
#ifndef P4TAP_DEFINES_P4
#define P4TAP_DEFINES_P4

typedef bit<9>   port_t;
typedef bit<48>  mac_addr_t;
typedef bit<32>  ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<16>  vrf_id_t;
// bmv2 clone sessions are 1..32767; 32 bits wide as clone_preserving_field_list
// takes them, since every cast makes a temporary that bmv2 zeroes per packet.
typedef bit<32>  clone_session_t;
typedef bit<16>  mcast_group_t;     // program groups stay below 32768 (bmv2 keeps the rest for clones)

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86dd;
const bit<16> ETHERTYPE_VLAN = 0x8100;

const bit<8> IP_PROTO_TCP = 6;
const bit<8> IP_PROTO_UDP = 17;

// v1model standard_metadata.instance_type values as bmv2 sets them.
const bit<32> INSTANCE_TYPE_INGRESS_CLONE = 1;
const bit<32> INSTANCE_TYPE_REPLICATION   = 5;
const bit<32> INSTANCE_TYPE_RESUBMIT      = 6;

// Field lists: preserved on intercept copies (clone_preserving_field_list),
// and on a packet resubmitted for its second intercept copy.
const bit<8> FIELD_LIST_INTERCEPT = 1;
const bit<8> FIELD_LIST_RESUBMIT  = 2;

// Sizes of the fixed headers an intercept copy gains (bytes).
const bit<16> ETHERNET_LEN   = 14;
const bit<16> VLAN_LEN       = 4;
const bit<16> IPV4_MIN_LEN   = 20;
const bit<16> IPV6_LEN       = 40;
const bit<16> UDP_LEN        = 8;
const bit<16> PCLI_LEN       = 4;
const bit<8>  OUTER_HOP_LIMIT = 64;

#endif
