/*
 * p4tap for v1model (bmv2 simple_switch_grpc). The Tofino twin is
 * p4src/tna/p4tap.p4: same controls (p4src/include/), other architecture.
 * This file is the only one that reads or writes standard_metadata: it
 * fills the plain fields of local_metadata_t the controls use and hands
 * their decisions to bmv2 (forwarding, queue, clone, resubmit, drop).
 *
 * Ingress: bridging, intercept gates, routing context (VRF), routing,
 *          intercept classification (clone), ETS conditioning (RFC 4190).
 * Egress:  intercept copies are encapsulated for their mediation device;
 *          everything else leaves as forwarding made it.
 */
// The architecture first: the shared controls are written against its macros.
#include "arch.p4"

#include "../include/defines.p4"
#include "../include/headers.p4"
#include "parser.p4"
#include "checksum.p4"
#include "flood_prune.p4"
#include "deparser.p4"
#include "../include/vrf.p4"
#include "../include/forwarding.p4"
#include "../include/intercept.p4"
#include "../include/encap.p4"
#include "../include/ets.p4"

control P4tapIngress(inout headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t std_meta) {
#include "../include/ingress_controls.p4"

    apply {
        if (std_meta.ingress_port == CPU_PORT) {
            // The controller's clock probe: answered to the CPU port alone,
            // with the clock egress compares expiries with; nothing else runs.
            // Told by its port here, not in the parser: a select there costs
            // bmv2 more on every packet than this condition. The probe's bytes
            // (packet_out header and all) go back behind the packet_in header
            // as whatever the parser made of them; nobody reads them.
            hdr.packet_in.setValid();
            hdr.packet_in.now = P4TAP_NOW(std_meta.ingress_global_timestamp);
            hdr.packet_in.tick_ns = P4TAP_TICK_NS;
            std_meta.egress_spec = CPU_PORT;
            return;
        }
        // The parser has set meta.ingress_port, but bmv2 zeroes the port of
        // a resubmitted packet; egress flood pruning reads it too.
        if (std_meta.instance_type == INSTANCE_TYPE_RESUBMIT) {
            meta.resubmitted = 1;
            meta.ingress_port = meta.resubmit_ingress_port;
            std_meta.ingress_port = meta.resubmit_ingress_port;
        }

#include "../include/ingress_apply.p4"

        // DROP_PORT is what mark_to_drop writes: egress_spec carries the drop.
        std_meta.egress_spec = meta.egress_port;
        std_meta.mcast_grp = meta.mcast_grp;
        std_meta.priority = meta.priority;
        // One I2E clone per pass; the copy keeps only its session.
        if (meta.intercept_session != 0) {
            clone_preserving_field_list(CloneType.I2E, meta.intercept_session,
                                        FIELD_LIST_INTERCEPT);
        }
        // A first pass owing a second copy goes round again, with its port.
        if (meta.resubmit_session != 0 && meta.resubmitted == 0) {
            meta.resubmit_ingress_port = meta.ingress_port;
            resubmit_preserving_field_list(FIELD_LIST_RESUBMIT);
        }
    }
}

control P4tapEgress(inout headers_t hdr,
                    inout local_metadata_t meta,
                    inout standard_metadata_t std_meta) {
    InterceptEncap() intercept_encap;
    FloodPrune() flood_prune;

    apply {
        if (std_meta.instance_type == INSTANCE_TYPE_INGRESS_CLONE) {
            // Egress never clones, so a copy is never copied again.
            if (meta.intercept_session != 0) {
                meta.replica = std_meta.egress_rid;
                meta.inner_len = (bit<16>)std_meta.packet_length;
                meta.now = P4TAP_NOW(std_meta.egress_global_timestamp);
                intercept_encap.apply(hdr, meta);
                if (meta.drop_copy == 1) {
                    mark_to_drop(std_meta);
                }
            } else {
                mark_to_drop(std_meta);
            }
        } else {
            flood_prune.apply(std_meta);
        }
    }
}

V1Switch(P4tapParser(),
         P4tapVerifyChecksum(),
         P4tapIngress(),
         P4tapEgress(),
         P4tapComputeChecksum(),
         P4tapDeparser()) main;
