/*
 * p4tap on TNA: the ingress and egress parsers. Both run the shared parse
 * graph (parser_states.p4) after what Tofino puts in front of the packet:
 * intrinsic metadata and port metadata or resubmit data in ingress (a
 * second pass learns here that it is one, and which session it owes); in
 * egress, the bridged header of a normal packet or the mirror header of an
 * intercept copy. A normal packet is not parsed further in egress, where
 * nothing reads its headers: it leaves exactly as ingress deparsed it.
 */
#ifndef P4TAP_TNA_PARSER_P4
#define P4TAP_TNA_PARSER_P4

#include "../include/headers.p4"

parser P4tapIngressParser(packet_in packet,
                          out headers_t hdr,
                          out local_metadata_t meta,
                          out ingress_intrinsic_metadata_t ig_intr_md) {
    resubmit_h resubmitted;

    state start {
        packet.extract(ig_intr_md);
        // Here, not in the control: a parser's assignment costs no stage.
        // A resubmitted packet keeps its port on Tofino.
        meta.ingress_port = ig_intr_md.ingress_port;
        transition select(ig_intr_md.resubmit_flag) {
            1: parse_resubmit;
            default: parse_port_metadata;
        }
    }

    state parse_resubmit {
        packet.extract(resubmitted);
        meta.resubmitted = 1;
        meta.resubmit_session = resubmitted.session;
#if __TARGET_TOFINO__ == 2
        packet.advance(64);   // Tofino 2 pads the resubmit data to 24 bytes
#endif
        transition parse_ethernet;
    }

    state parse_port_metadata {
        packet.advance(PORT_METADATA_SIZE);
        transition select(ig_intr_md.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }

    // A clock probe from the controller: nothing behind it is parsed.
    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition accept;
    }

#include "../include/parser_states.p4"
}

parser P4tapEgressParser(packet_in packet,
                         out headers_t hdr,
                         out local_metadata_t meta,
                         out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        packet.extract(eg_intr_md);
        transition select(packet.lookahead<bit<8>>()) {
            PKT_TYPE_MIRROR: parse_mirror;
            default: parse_bridged;
        }
    }

    state parse_bridged {
        packet.extract(hdr.bridged);
        transition accept;
    }

    state parse_mirror {
        packet.extract(hdr.mirror);
        meta.intercept_session = hdr.mirror.session;
        transition parse_ethernet;
    }

#include "../include/parser_states.p4"
}

#endif
