/*
 * p4tap on TNA (Tofino 1) and T2NA (Tofino 2): the types, headers and
 * externs the shared controls (p4src/include/) are written against, as
 * Tofino has them. Intrinsic metadata never reaches the controls:
 * p4tap.p4 and parser.p4 copy what they need into plain fields of
 * local_metadata_t and hand the controls' decisions to the traffic manager
 * and the deparsers.
 *
 * What differs from v1model, and how the pipeline keeps the intercept
 * invariants across it:
 *   - Copies are I2E mirrors, one per ingress pass (as one clone on bmv2):
 *     the second copy of a packet tapped on both sides comes from its
 *     resubmitted pass. A copy carries only the mirror header the ingress
 *     deparser writes (its session); egress parses the packet behind it.
 *   - A mirror session has one destination. The controller points every
 *     intercept session at a multicast group of one node per mediation
 *     device (the PRE sets that node's rid), so each MD gets exactly one
 *     copy and egress selects its CCCID and encapsulation by egress_rid,
 *     as on bmv2. A copy is never mirrored again: egress mirrors nothing.
 *   - Egress metadata does not come from ingress: normal packets carry a
 *     bridged header (their ingress port and whether they were flooded, for
 *     flood pruning), copies their mirror header.
 *   - A resubmitted packet keeps its ingress port on Tofino; its session
 *     rides in the resubmit data.
 *   - No truncation in the pipeline: Ethernet padding that trailed a short
 *     intercepted packet stays behind the copy, outside its IP and UDP
 *     lengths (receivers trim to the IP length).
 *   - Direct counters count only where an action says so
 *     (P4TAP_DIRECT_COUNT), and every hit action of their table must.
 */
#ifndef P4TAP_TNA_ARCH_P4
#define P4TAP_TNA_ARCH_P4

#include <core.p4>
#if __TARGET_TOFINO__ == 2
#include <t2na.p4>
#else
#include <tna.p4>
#endif

typedef MirrorId_t clone_session_t;   // 10 bits on Tofino 1, 8 on Tofino 2
typedef bit<3>     priority_t;        // the queue within the port's ETS set

// What the controls' drop writes into meta.egress_port; p4tap.p4 turns it
// into drop_ctl, so nothing is ever sent to this port.
const PortId_t DROP_PORT = 511;

// The CPU PCIe port, by which the controller's clock probes come in and go
// back: 192 on Tofino 1 (its 4-pipe parts; 64 on 2-pipe ones), 0 on Tofino 2.
#if __TARGET_TOFINO__ == 2
const PortId_t CPU_PORT = 0;
#else
const PortId_t CPU_PORT = 192;
#endif

// The switch clock as the controls see it (meta.now): Tofino's global
// timestamp counts nanoseconds in 48 bits (wrapping after 78 h), and
// meta.now is bits 47..16 of it, a tick of 65.536 us; 2^31 ticks are 39 h.
#define P4TAP_NOW(timestamp) (timestamp)[47:16]
const bit<32> P4TAP_TICK_NS = 65536;

// Mirror and resubmit types (the deparser's selectors), and what leads every
// packet into egress so that its parser can tell a copy from the original.
const MirrorType_t   MIRROR_TYPE_INTERCEPT   = 1;
const ResubmitType_t RESUBMIT_TYPE_INTERCEPT = 1;
const bit<8> PKT_TYPE_NORMAL = 1;
const bit<8> PKT_TYPE_MIRROR = 2;

// Normal packets, ingress to egress: where they came in, whether they flood.
header bridged_h {
    bit<8>   pkt_type;
    @padding bit<6> _pad;
    bit<1>   flooded;
    PortId_t ingress_port;
}

// Intercept copies: the session that made them (never 0 on a copy).
header mirror_h {
    bit<8>   pkt_type;
    @padding bit<(16 - MIRROR_ID_WIDTH)> _pad;
    MirrorId_t session;
}

// The resubmit data: 8 bytes on Tofino 1, 16 on Tofino 2.
header resubmit_h {
    @padding bit<(32 - MIRROR_ID_WIDTH)> _pad;
    MirrorId_t session;
#if __TARGET_TOFINO__ == 2
    @padding bit<96> _pad2;
#else
    @padding bit<32> _pad2;
#endif
}

// Table sizes that fit the chip's stages beside each other (sizes.p4
// has bmv2's): see BENCHMARKS.md, tofino_resources, for what each takes.
#define P4TAP_IPV4_ROUTES_SIZE   2048
#define P4TAP_IPV6_ROUTES_SIZE   1024
#define P4TAP_IPV4_GATE_SIZE     2048
#define P4TAP_IPV6_GATE_SIZE     512
#if __TARGET_TOFINO__ == 2
#define P4TAP_IPV4_FILTER_SIZE   2048    // 19 of Tofino 2's 20 ingress stages
#define P4TAP_IPV6_FILTER_SIZE   1024
#else
#define P4TAP_IPV4_FILTER_SIZE   512     // all 12 of Tofino 1's ingress stages
#define P4TAP_IPV6_FILTER_SIZE   256
#endif
#define P4TAP_MERGE_SIZE         2048
#define P4TAP_REPLICAS           4096
#define P4TAP_ETS_MARKS_SIZE     1024

#define P4TAP_ARCH_HEADERS bridged_h bridged; mirror_h mirror;
// The mirror header's type byte (a deparser field list takes no constants);
// whether the IPv4 header changed, so the ingress deparser recomputes its
// checksum.
#define P4TAP_ARCH_METADATA bit<8> mirror_pkt_type; bit<1> ipv4_rewritten;

// Nothing to keep by annotation: what a copy or a second pass needs travels
// in the mirror header and the resubmit data.
#define P4TAP_KEPT_ON_CLONE
#define P4TAP_KEPT_ON_RESUBMIT

// IPv4 header checksum after a rewrite: Tofino cannot fold a one's
// complement sum inside an action, so the action only says so and the
// ingress deparser recomputes the header's checksum (deparser.p4): the same
// value as bmv2's incremental update wherever the checksum arrived correct.
#define P4TAP_IPV4_CSUM_ADJUST(delta) meta.ipv4_rewritten = 1

#define P4TAP_DIRECT_COUNTER(name)          DirectCounter<bit<32>>(CounterType_t.PACKETS_AND_BYTES) name
#define P4TAP_DIRECT_COUNT(name)            name.count()
#define P4TAP_PACKET_COUNTER(name, size)    Counter<bit<32>, bit<32>>(size, CounterType_t.PACKETS) name
#define P4TAP_TRAFFIC_COUNTER(name, size)   Counter<bit<32>, bit<32>>(size, CounterType_t.PACKETS_AND_BYTES) name
#define P4TAP_COUNT(name, index)            name.count((bit<32>)(index))
// Colour: 0 green, 1 yellow, 3 red; only green matters to the controls.
#define P4TAP_BYTE_METER(name, size)        Meter<bit<32>>(size, MeterType_t.BYTES) name
#define P4TAP_METER_EXECUTE(name, index, color) color = (bit<2>)name.execute((bit<32>)(index))
// No truncation in the pipeline (see above).
#define P4TAP_TRUNCATE(len)

#endif
