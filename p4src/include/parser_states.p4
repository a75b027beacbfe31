/*
 * p4tap: the parse graph from the Ethernet header on, shared by every
 * target's parsers: #included inside a parser body (after its own start
 * state, which reads the architecture's intrinsic metadata), so each target
 * parses a packet into the same headers with no sub-parser call between.
 * It expects `packet`, `hdr` and `meta` in scope.
 *
 * Parsing never consumes bytes it cannot re-emit: anything it does not
 * understand stays in the payload, so the forwarded packet is byte-identical
 * to the received one except for what routing deliberately rewrites.
 */

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
        transition select(hdr.ipv6.next_hdr) {
            IP_PROTO_TCP: parse_tcp;
            IP_PROTO_UDP: parse_udp;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.l4_ports);
        packet.extract(hdr.tcp_rest);
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.l4_ports);
        packet.extract(hdr.udp_rest);
        transition accept;
    }
