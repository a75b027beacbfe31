/*
 * p4tap on v1model: the types, annotations and externs the shared controls
 * (p4src/include/) are written against, as bmv2 has them. Intrinsic
 * metadata never reaches the controls: p4tap.p4 copies what they need into
 * plain fields of local_metadata_t and back. Every extern macro expands to
 * what the controls wrote by hand before the TNA port.
 */
#ifndef P4TAP_V1MODEL_ARCH_P4
#define P4TAP_V1MODEL_ARCH_P4

#include <core.p4>
#include <v1model.p4>

// bmv2 clone sessions are 1..32767; 32 bits wide as clone_preserving_field_list
// takes them, since every cast makes a temporary that bmv2 zeroes per packet.
typedef bit<32> clone_session_t;
typedef bit<3>  priority_t;       // standard_metadata.priority (bmv2 priority queues)

// egress_spec 511 is bmv2's drop port (what mark_to_drop writes).
const bit<9> DROP_PORT = 511;

// The CPU port: simple_switch_grpc --cpu-port 510 (bmv2_topo starts every
// switch so). Only the controller's clock probes come in by it; no
// interface is ever attached to it.
const bit<9> CPU_PORT = 510;

// The switch clock as the controls see it (meta.now): bmv2's timestamps
// count microseconds since the switch started, and meta.now is bits 41..10
// of them, a tick of 1.024 ms; 2^31 ticks are 25 days.
#define P4TAP_NOW(timestamp) (timestamp)[41:10]
const bit<32> P4TAP_TICK_NS = 1024000;

// v1model standard_metadata.instance_type values as bmv2 sets them.
const bit<32> INSTANCE_TYPE_INGRESS_CLONE = 1;
const bit<32> INSTANCE_TYPE_REPLICATION   = 5;
const bit<32> INSTANCE_TYPE_RESUBMIT      = 6;

// Field lists: preserved on intercept copies (clone_preserving_field_list),
// and on a packet resubmitted for its second intercept copy.
const bit<8> FIELD_LIST_INTERCEPT = 1;
const bit<8> FIELD_LIST_RESUBMIT  = 2;
#define P4TAP_KEPT_ON_CLONE    @field_list(FIELD_LIST_INTERCEPT)
#define P4TAP_KEPT_ON_RESUBMIT @field_list(FIELD_LIST_RESUBMIT)

// Nothing travels between the gresses but the packet and its metadata.
#define P4TAP_ARCH_HEADERS
// bmv2 zeroes all standard metadata of a resubmitted packet but its length
// and instance type: the second pass gets the first pass's port from here.
#define P4TAP_ARCH_METADATA @field_list(FIELD_LIST_RESUBMIT) bit<9> resubmit_ingress_port;

// IPv4 header checksum after a change worth `delta` (~m + m', one's
// complement): RFC 1624 eqn. 3, HC' = ~(~HC + delta), one end-around carry
// at most. Incremental, so it leaves a wrong checksum as wrong as it came;
// one expression inside the action, so bmv2 zeroes no temporaries for it on
// every packet.
#define P4TAP_IPV4_CSUM_ADJUST(delta) \
    hdr.ipv4.hdr_checksum = ~(((bit<17>)(~hdr.ipv4.hdr_checksum) + (bit<17>)(delta))[15:0] \
                              + (bit<16>)(((bit<17>)(~hdr.ipv4.hdr_checksum) + (bit<17>)(delta))[16:16]))

// Externs. bmv2 counts a direct counter on every hit by itself.
#define P4TAP_DIRECT_COUNTER(name)          direct_counter(CounterType.packets_and_bytes) name
#define P4TAP_DIRECT_COUNT(name)
#define P4TAP_PACKET_COUNTER(name, size)    counter(size, CounterType.packets) name
#define P4TAP_TRAFFIC_COUNTER(name, size)   counter(size, CounterType.packets_and_bytes) name
#define P4TAP_COUNT(name, index)            name.count((bit<32>)(index))
// Two-rate three-colour in bytes; the colour lands in `color` (0 green).
#define P4TAP_BYTE_METER(name, size)        meter(size, MeterType.bytes) name
#define P4TAP_METER_EXECUTE(name, index, color) name.execute_meter((bit<32>)(index), color)
// Cut any Ethernet padding that trailed the intercepted IP packet.
#define P4TAP_TRUNCATE(len)  truncate((bit<32>)(len))

#endif
