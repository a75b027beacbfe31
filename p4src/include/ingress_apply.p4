/*
 * p4tap: the ingress pipeline, the same on every target; #included in the
 * apply block of each target's P4tapIngress (see ingress_controls.p4),
 * after the top file has filled meta.ingress_port and meta.resubmitted and
 * before it hands meta.egress_port, mcast_grp, priority, intercept_session
 * and resubmit_session to its architecture.
 *
 * Ordered so that the common case pays least: an untapped bridged packet
 * passes the L2 table and its gates, nothing else. The VRF is looked up
 * only for what routes or may be tapped.
 */

        bridging.apply(hdr, meta);
        if (meta.resubmitted == 1) {
            // Its gates stay shut: the first pass classified it already.
            intercept_resubmitted.apply(meta);
        } else {
            intercept_gates.apply(hdr, meta);
        }
        if (meta.routed == 1 || meta.src_gate_open == 1 || meta.dst_gate_open == 1) {
            vrf_classifier.apply(hdr, meta);
        }
        if (meta.routed == 1) {
            routing.apply(hdr, meta);
        }
        if (meta.src_gate_open == 1 || meta.dst_gate_open == 1) {
            intercept_classifier.apply(hdr, meta);
        }
        // After the intercept filters (they match the DSCP as sent). A first
        // pass that resubmits is never forwarded: its second pass, with the
        // same ingress port, conditions and meters it as if untapped.
        if (meta.ip_version != 0
                && (meta.resubmit_session == 0 || meta.resubmitted == 1)) {
            ets_conditioner.apply(hdr, meta);
        }
