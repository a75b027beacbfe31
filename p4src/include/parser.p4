/*
 * p4tap: parser and deparser.
 *
 * Parsing never consumes bytes it cannot re-emit: anything it does not
 * understand stays in the payload, so the forwarded packet is byte-identical
 * to the received one except for what routing deliberately rewrites.
 * bmv2 re-parses an I2E clone with this same parser (before it sets
 * instance_type), so a copy arrives in egress with the same headers.
 */
#ifndef P4TAP_PARSER_P4
#define P4TAP_PARSER_P4

#include "headers.p4"

parser P4tapParser(packet_in packet,
                   out headers_t hdr,
                   inout local_metadata_t meta,
                   inout standard_metadata_t std_meta) {

    state start {
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_VLAN: parse_vlan;
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_vlan {
        packet.extract(hdr.vlan);
        transition select(hdr.vlan.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        // A version other than 4 or an IHL below 5 is not an IPv4 header
        // we can classify: leave ip_version at 0 and the rest as payload.
        transition select(hdr.ipv4.version, hdr.ipv4.ihl) {
            (4, 5):          parse_ipv4_payload;
            (4, 6 &&& 0xE):  parse_ipv4_options;   // 6, 7
            (4, 8 &&& 0x8):  parse_ipv4_options;   // 8 .. 15
            default: accept;
        }
    }

    state parse_ipv4_options {
        packet.extract(hdr.ipv4_options, (bit<32>)(hdr.ipv4.ihl - 5) * 32);
        transition parse_ipv4_payload;
    }

    state parse_ipv4_payload {
        meta.ip_version = 4;
        meta.ip_proto = hdr.ipv4.protocol;
        meta.ip_tos = hdr.ipv4.tos;
        // Only a first fragment carries the L4 header.
        transition select(hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (0, IP_PROTO_TCP): parse_tcp;
            (0, IP_PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_ipv6 {
        packet.extract(hdr.ipv6);
        transition select(hdr.ipv6.version) {
            6: parse_ipv6_payload;
            default: accept;
        }
    }

    state parse_ipv6_payload {
        meta.ip_version = 6;
        meta.ip_proto = hdr.ipv6.next_hdr;
        meta.ip_tos = hdr.ipv6.traffic_class;
        transition select(hdr.ipv6.next_hdr) {
            IP_PROTO_TCP: parse_tcp;
            IP_PROTO_UDP: parse_udp;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.l4_valid = 1;
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        meta.l4_valid = 1;
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        transition accept;
    }
}

control P4tapDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.vlan);
        packet.emit(hdr.outer_ipv4);
        packet.emit(hdr.outer_ipv6);
        packet.emit(hdr.outer_udp);
        packet.emit(hdr.pcli);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_options);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

#endif
