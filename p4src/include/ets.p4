/*
 * p4tap: RFC 4190 emergency telecommunications (ETS) conditioning.
 *
 * One exact lookup per IP packet, keyed on (ingress port, whole TOS /
 * traffic-class byte); the controller expands its config into entries, so a
 * packet whose mark is not ETS on its port misses and pays nothing more:
 *   - untrusted port, ETS mark: the DSCP is reset to the default class
 *     (RFC 4190 §4.4.1), ECN kept, IPv4 checksum adjusted incrementally;
 *   - trusted port, ETS mark: the class's egress queue (meta.priority,
 *     which the top file hands to the target's queue selector) and, under
 *     the default non-preemptive policy (§4.2), the
 *     port's ETS meter. Over its cap (meter not green) the packet is demoted
 *     to the normal queue, never dropped; under the optional preemptive
 *     policy it keeps its queue.
 * Each entry's direct counter counts the packets of that (port, mark), so
 * the controller sums them per class; demotions are counted per port.
 *
 * Applied after intercept classification, so intercept filters see the DSCP
 * the subject sent; an intercept copy is an I2E clone (bmv2) or mirror
 * (Tofino) of the packet as it arrived, with priority 0: remarking and
 * queueing never reach the copy.
 */
#ifndef P4TAP_ETS_P4
#define P4TAP_ETS_P4

#include "headers.p4"

const priority_t ETS_NORMAL_PRIORITY = 0;
const bit<2> METER_GREEN = 0;
// One meter and one demotion counter per port (index = port number).
const bit<32> ETS_PORTS = P4TAP_ETS_PORTS;

control EtsConditioner(inout headers_t hdr,
                       inout local_metadata_t meta) {

    P4TAP_DIRECT_COUNTER(ipv4_marks_counter);
    P4TAP_DIRECT_COUNTER(ipv6_marks_counter);
    // Two-rate three-colour, in bytes; the controller sets both rates to the
    // port's ETS cap. An unconfigured meter says green.
    P4TAP_BYTE_METER(ets_cap, ETS_PORTS);
    P4TAP_TRAFFIC_COUNTER(ets_demoted, ETS_PORTS);

    // Untrusted port: the mark becomes `tos` (default class, same ECN).
    // csum_delta = ~old_tos + new_tos (one's complement, folded), computed by
    // the controller: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
    action reset_ipv4(bit<8> tos, bit<16> csum_delta) {
        P4TAP_DIRECT_COUNT(ipv4_marks_counter);
        hdr.ipv4.tos = tos;
        P4TAP_IPV4_CSUM_ADJUST(csum_delta);
    }

    action reset_ipv6(bit<8> traffic_class) {
        P4TAP_DIRECT_COUNT(ipv6_marks_counter);
        hdr.ipv6.traffic_class = traffic_class;
    }

    // Trusted port, non-preemptive: the class's queue while within the cap.
    // One action per table (so per family): on Tofino every hit action of a
    // table with a direct counter must count into that table's own counter,
    // so one action cannot serve both tables. The meter runs after the
    // table: on Tofino a meter's colour comes back on the statistics address
    // bus the table's direct counter already takes.
    action ets_capped_ipv4(priority_t priority) {
        P4TAP_DIRECT_COUNT(ipv4_marks_counter);
        meta.priority = priority;
        meta.ets_capped = 1;
    }

    action ets_capped_ipv6(priority_t priority) {
        P4TAP_DIRECT_COUNT(ipv6_marks_counter);
        meta.priority = priority;
        meta.ets_capped = 1;
    }

    // Trusted port, preemptive policy (off unless configured): no cap.
    action ets_preemptive_ipv4(priority_t priority) {
        P4TAP_DIRECT_COUNT(ipv4_marks_counter);
        meta.priority = priority;
    }

    action ets_preemptive_ipv6(priority_t priority) {
        P4TAP_DIRECT_COUNT(ipv6_marks_counter);
        meta.priority = priority;
    }

    action demote() {
        meta.priority = ETS_NORMAL_PRIORITY;
        P4TAP_COUNT(ets_demoted, meta.ingress_port);
    }

    table ipv4_marks {
        key = {
            meta.ingress_port: exact @name("ingress_port");
            hdr.ipv4.tos:       exact @name("tos");
        }
        actions = { reset_ipv4; ets_capped_ipv4; ets_preemptive_ipv4; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = ipv4_marks_counter;
        size = P4TAP_ETS_MARKS_SIZE;
    }

    table ipv6_marks {
        key = {
            meta.ingress_port:     exact @name("ingress_port");
            hdr.ipv6.traffic_class: exact @name("tos");
        }
        actions = { reset_ipv6; ets_capped_ipv6; ets_preemptive_ipv6; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = ipv6_marks_counter;
        size = P4TAP_ETS_MARKS_SIZE;
    }

    apply {
        if (meta.ip_version == 4) {
            ipv4_marks.apply();
        } else {
            ipv6_marks.apply();
        }
        if (meta.ets_capped == 1) {
            P4TAP_METER_EXECUTE(ets_cap, meta.ingress_port, meta.ets_color);
        }
        if (meta.ets_color != METER_GREEN) {
            demote();
        }
    }
}

#endif
