/*
 * p4tap for v1model (bmv2 simple_switch_grpc).
 *
 * Ingress: bridging, intercept gates, routing context (VRF), routing,
 *          intercept classification (clone), ETS conditioning (RFC 4190).
 * Egress:  intercept copies are encapsulated for their mediation device;
 *          everything else leaves as forwarding made it.
 */
#include <core.p4>
#include <v1model.p4>

#include "../include/defines.p4"
#include "../include/headers.p4"
#include "../include/parser.p4"
#include "../include/checksum.p4"
#include "../include/vrf.p4"
#include "../include/forwarding.p4"
#include "../include/intercept.p4"
#include "../include/encap.p4"
#include "../include/ets.p4"

control P4tapIngress(inout headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t std_meta) {
    Bridging() bridging;
    InterceptGates() intercept_gates;
    VrfClassifier() vrf_classifier;
    Routing() routing;
    InterceptClassifier() intercept_classifier;
    InterceptResubmitted() intercept_resubmitted;
    EtsConditioner() ets_conditioner;

    // Ordered so that the common case pays least: an untapped bridged packet
    // passes the L2 table and its gates, nothing else. The VRF is looked up
    // only for what routes or may be tapped.
    apply {
        bridging.apply(hdr, meta, std_meta);
        if (std_meta.instance_type == INSTANCE_TYPE_RESUBMIT) {
            // Its gates stay shut: the first pass classified it already.
            intercept_resubmitted.apply(meta, std_meta);
        } else {
            intercept_gates.apply(hdr, meta, std_meta);
        }
        if (meta.routed == 1 || meta.src_gate_open == 1 || meta.dst_gate_open == 1) {
            vrf_classifier.apply(hdr, meta, std_meta);
        }
        if (meta.routed == 1) {
            routing.apply(hdr, meta, std_meta);
        }
        if (meta.src_gate_open == 1 || meta.dst_gate_open == 1) {
            intercept_classifier.apply(hdr, meta, std_meta);
        }
        // After the intercept filters (they match the DSCP as sent). A first
        // pass that resubmits is never forwarded: its second pass, with the
        // same ingress port, conditions and meters it as if untapped.
        if (meta.ip_version != 0
                && (meta.resubmit_session == 0 || std_meta.instance_type == INSTANCE_TYPE_RESUBMIT)) {
            ets_conditioner.apply(hdr, meta, std_meta);
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
                intercept_encap.apply(hdr, meta, std_meta);
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
