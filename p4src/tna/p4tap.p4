/*
 * p4tap for TNA: Tofino 1 (--target tofino --arch tna) and Tofino 2
 * (--target tofino2 --arch t2na). The v1model twin is p4src/v1model/p4tap.p4:
 * same controls (p4src/include/), other architecture (see arch.p4). This
 * file and parser.p4 are the only ones that read or write Tofino's
 * intrinsic metadata: they fill the plain fields of local_metadata_t the
 * controls use and hand their decisions to the traffic manager (unicast,
 * multicast, queue, drop) and the deparser (mirror, resubmit).
 */
// The architecture first: the shared controls are written against its macros.
#include "arch.p4"

#include "../include/defines.p4"
#include "../include/headers.p4"
#include "parser.p4"
#include "deparser.p4"
#include "../include/vrf.p4"
#include "../include/forwarding.p4"
#include "../include/intercept.p4"
#include "../include/encap.p4"
#include "../include/ets.p4"

// TNA leaves metadata uninitialised; the shared controls rely on zeroes.
@pa_auto_init_metadata
control P4tapIngress(inout headers_t hdr,
                     inout local_metadata_t meta,
                     in ingress_intrinsic_metadata_t ig_intr_md,
                     in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                     inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                     inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
#include "../include/ingress_controls.p4"

    apply {
        if (hdr.packet_out.isValid()) {
            // The controller's clock probe: answered to the CPU port alone,
            // with the clock egress compares expiries with; nothing else runs.
            hdr.packet_out.setInvalid();
            hdr.packet_in.setValid();
            hdr.packet_in.now = P4TAP_NOW(ig_prsr_md.global_tstamp);
            hdr.packet_in.tick_ns = P4TAP_TICK_NS;
            ig_tm_md.ucast_egress_port = CPU_PORT;
            hdr.bridged.setValid();
            hdr.bridged.pkt_type = PKT_TYPE_NORMAL;
            hdr.bridged.ingress_port = ig_intr_md.ingress_port;
            return;
        }
        // parser.p4 has set meta.ingress_port and meta.resubmitted.

#include "../include/ingress_apply.p4"

        if (meta.egress_port == DROP_PORT) {
            // Bit 0 stops unicast and multicast, not the mirror: a dropped
            // packet's copy still goes out, as on bmv2.
            ig_dprsr_md.drop_ctl = 1;
        } else if (meta.mcast_grp != 0) {
            ig_tm_md.mcast_grp_a = meta.mcast_grp;
        } else {
            ig_tm_md.ucast_egress_port = meta.egress_port;
        }
        ig_tm_md.qid = (QueueId_t)meta.priority;
        // One mirror per pass; the ingress deparser writes its header.
        if (meta.intercept_session != 0) {
            ig_dprsr_md.mirror_type = MIRROR_TYPE_INTERCEPT;
            meta.mirror_pkt_type = PKT_TYPE_MIRROR;
        }
        // A first pass owing a second copy goes round again (its port stays).
        if (meta.resubmit_session != 0 && meta.resubmitted == 0) {
            ig_dprsr_md.resubmit_type = RESUBMIT_TYPE_INTERCEPT;
        }
        // What egress needs of the forwarded packet: flood pruning.
        hdr.bridged.setValid();
        hdr.bridged.pkt_type = PKT_TYPE_NORMAL;
        hdr.bridged.ingress_port = ig_intr_md.ingress_port;
        if (meta.mcast_grp != 0) {
            hdr.bridged.flooded = 1;
        }
    }
}

@pa_auto_init_metadata
control P4tapEgress(inout headers_t hdr,
                    inout local_metadata_t meta,
                    in egress_intrinsic_metadata_t eg_intr_md,
                    in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                    inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                    inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {
    InterceptEncap() intercept_encap;

    apply {
        if (hdr.mirror.isValid()) {
            // Egress never mirrors, so a copy is never copied again.
            if (meta.intercept_session != 0) {
                meta.replica = eg_intr_md.egress_rid;
                meta.inner_len = 0xFFFF;   // unknown here: the IP length alone
                meta.now = P4TAP_NOW(eg_prsr_md.global_tstamp);
                intercept_encap.apply(hdr, meta);
                if (meta.drop_copy == 1) {
                    eg_dprsr_md.drop_ctl = 1;
                }
            } else {
                eg_dprsr_md.drop_ctl = 1;
            }
        } else if (hdr.bridged.flooded == 1
                   && eg_intr_md.egress_port == hdr.bridged.ingress_port) {
            // Flood pruning: never send a replica back where it came from.
            eg_dprsr_md.drop_ctl = 1;
        }
        hdr.bridged.setInvalid();
        hdr.mirror.setInvalid();
    }
}

Pipeline(P4tapIngressParser(),
         P4tapIngress(),
         P4tapIngressDeparser(),
         P4tapEgressParser(),
         P4tapEgress(),
         P4tapEgressDeparser()) pipe;

Switch(pipe) main;
