/*
 * Baseline for bench/: the least a v1model switch can do (Ethernet parse,
 * one exact L2 table). p4tap's forwarding rate is measured against it.
 */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

struct headers_t { ethernet_t ethernet; }
struct metadata_t { }

parser MinimalParser(packet_in packet, out headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t std_meta) {
    state start {
        packet.extract(hdr.ethernet);
        transition accept;
    }
}

control MinimalVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MinimalIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std_meta) {
    action drop() { mark_to_drop(std_meta); }
    action l2_forward(bit<9> port) { std_meta.egress_spec = port; }
    table l2_table {
        key = { hdr.ethernet.dst_addr: exact @name("dst_addr"); }
        actions = { l2_forward; drop; }
        const default_action = drop();
        size = 4096;
    }
    apply { l2_table.apply(); }
}

control MinimalEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std_meta) { apply { } }
control MinimalComputeChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }
control MinimalDeparser(packet_out packet, in headers_t hdr) { apply { packet.emit(hdr.ethernet); } }

V1Switch(MinimalParser(), MinimalVerifyChecksum(), MinimalIngress(), MinimalEgress(),
         MinimalComputeChecksum(), MinimalDeparser()) main;
