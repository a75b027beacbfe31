/*
 * p4tap on v1model: the egress half of flooding. bmv2 replicates a flooded
 * frame to every member of its group, the ingress port included; a replica
 * never goes back out of the port it came in by.
 */
#ifndef P4TAP_V1MODEL_FLOOD_PRUNE_P4
#define P4TAP_V1MODEL_FLOOD_PRUNE_P4

control FloodPrune(inout standard_metadata_t std_meta) {
    apply {
        if (std_meta.instance_type == INSTANCE_TYPE_REPLICATION
                && std_meta.egress_port == std_meta.ingress_port) {
            mark_to_drop(std_meta);
        }
    }
}

#endif
