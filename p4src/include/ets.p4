/*
 * p4tap: RFC 4190 emergency telecommunications (ETS) conditioning.
 *
 * One exact lookup per IP packet, keyed on (ingress port, whole TOS /
 * traffic-class byte); the controller expands its config into entries, so a
 * packet whose mark is not ETS on its port misses and pays nothing more:
 *   - untrusted port, ETS mark: the DSCP is reset to the default class
 *     (RFC 4190 §4.4.1), ECN kept, IPv4 checksum adjusted incrementally;
 *   - trusted port, ETS mark: the class's egress queue (standard_metadata.
 *     priority) and, under the default non-preemptive policy (§4.2), the
 *     port's ETS meter. Over its cap (meter not green) the packet is demoted
 *     to the normal queue, never dropped; under the optional preemptive
 *     policy it keeps its queue.
 * Each entry's direct counter counts the packets of that (port, mark), so
 * the controller sums them per class; demotions are counted per port.
 *
 * Applied after intercept classification, so intercept filters see the DSCP
 * the subject sent; an intercept copy is an I2E clone, which bmv2 re-parses
 * from the packet as it arrived, with priority 0: remarking and queueing
 * never reach the copy.
 */
#ifndef P4TAP_ETS_P4
#define P4TAP_ETS_P4

#include "headers.p4"

const bit<3> ETS_NORMAL_PRIORITY = 0;
const bit<2> METER_GREEN = 0;
// One meter and one demotion counter per port (index = port number).
const bit<32> ETS_PORTS = 512;

control EtsConditioner(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std_meta) {

    direct_counter(CounterType.packets_and_bytes) ipv4_marks_counter;
    direct_counter(CounterType.packets_and_bytes) ipv6_marks_counter;
    // Two-rate three-colour, in bytes; the controller sets both rates to the
    // port's ETS cap. An unconfigured meter says green.
    meter(ETS_PORTS, MeterType.bytes) ets_cap;
    counter(ETS_PORTS, CounterType.packets_and_bytes) ets_demoted;

    // Untrusted port: the mark becomes `tos` (default class, same ECN).
    // csum_delta = ~old_tos + new_tos (one's complement, folded), computed by
    // the controller: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
    action reset_ipv4(bit<8> tos, bit<16> csum_delta) {
        hdr.ipv4.tos = tos;
        hdr.ipv4.hdr_checksum = ~(((bit<17>)(~hdr.ipv4.hdr_checksum) + (bit<17>)csum_delta)[15:0]
                                  + (bit<16>)(((bit<17>)(~hdr.ipv4.hdr_checksum) + (bit<17>)csum_delta)[16:16]));
    }

    action reset_ipv6(bit<8> traffic_class) {
        hdr.ipv6.traffic_class = traffic_class;
    }

    // Trusted port, non-preemptive: the class's queue while within the cap.
    action ets_capped(bit<3> priority) {
        std_meta.priority = priority;
        ets_cap.execute_meter((bit<32>)std_meta.ingress_port, meta.ets_color);
    }

    // Trusted port, preemptive policy (off unless configured): no cap.
    action ets_preemptive(bit<3> priority) {
        std_meta.priority = priority;
    }

    action demote() {
        std_meta.priority = ETS_NORMAL_PRIORITY;
        ets_demoted.count((bit<32>)std_meta.ingress_port);
    }

    table ipv4_marks {
        key = {
            std_meta.ingress_port: exact @name("ingress_port");
            hdr.ipv4.tos:          exact @name("tos");
        }
        actions = { reset_ipv4; ets_capped; ets_preemptive; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = ipv4_marks_counter;
        size = 8192;
    }

    table ipv6_marks {
        key = {
            std_meta.ingress_port:  exact @name("ingress_port");
            hdr.ipv6.traffic_class: exact @name("tos");
        }
        actions = { reset_ipv6; ets_capped; ets_preemptive; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = ipv6_marks_counter;
        size = 8192;
    }

    apply {
        if (meta.ip_version == 4) {
            ipv4_marks.apply();
        } else {
            ipv6_marks.apply();
        }
        if (meta.ets_color != METER_GREEN) {
            demote();
        }
    }
}

#endif
