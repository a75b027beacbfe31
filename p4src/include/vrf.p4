/*
 * p4tap: routing context (VRF) of a packet, from its ingress port or VLAN.
 * Both forwarding and the intercept classifier key on it
 * (citapStreamVRF names the routing table a filter applies to).
 */
#ifndef P4TAP_VRF_P4
#define P4TAP_VRF_P4

#include "headers.p4"

control VrfClassifier(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t std_meta) {

    action set_vrf(vrf_id_t vrf) {
        meta.vrf = vrf;
    }

    // Exact tables only: this runs for every packet, and bmv2 scans
    // ternary tables linearly.
    table port_vlan_vrf {
        key = {
            std_meta.ingress_port: exact @name("ingress_port");
            hdr.vlan.vid:          exact @name("vid");
        }
        actions = { set_vrf; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 4096;
    }

    table port_vrf {
        key = {
            std_meta.ingress_port: exact @name("ingress_port");
        }
        actions = { set_vrf; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 512;
    }

    apply {
        meta.vrf = 0;  // the global routing table
        bool by_vlan = false;
        if (hdr.vlan.isValid()) {
            by_vlan = port_vlan_vrf.apply().hit;
        }
        if (!by_vlan) {
            port_vrf.apply();
        }
    }
}

#endif
