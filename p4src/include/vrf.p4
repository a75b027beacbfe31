/*
 * p4tap: routing context (VRF) of a packet, from its ingress port or VLAN.
 * Both forwarding and the intercept classifier key on it
 * (citapStreamVRF names the routing table a filter applies to).
 */
#ifndef P4TAP_VRF_P4
#define P4TAP_VRF_P4

#include "headers.p4"

control VrfClassifier(inout headers_t hdr,
                      inout local_metadata_t meta) {

    action set_vrf(vrf_id_t vrf) {
        meta.vrf = vrf;
    }

    // Exact tables only: this runs for every packet, and bmv2 scans
    // ternary tables linearly.
    table port_vlan_vrf {
        key = {
            meta.ingress_port: exact @name("ingress_port");
            hdr.vlan.vid:          exact @name("vid");
        }
        actions = { set_vrf; @defaultonly NoAction; }
        const default_action = NoAction();
        size = P4TAP_PORT_VLAN_VRF_SIZE;
    }

    table port_vrf {
        key = {
            meta.ingress_port: exact @name("ingress_port");
        }
        actions = { set_vrf; @defaultonly NoAction; }
        const default_action = NoAction();
        size = P4TAP_PORT_VRF_SIZE;
    }

    // meta.vrf starts at 0 (the global table): bmv2 zeroes metadata per packet.
    // Nested applies, not flags: every assignment outside an action costs
    // bmv2 a compiler-made table per packet.
    apply {
        if (hdr.vlan.isValid()) {
            if (!port_vlan_vrf.apply().hit) {
                port_vrf.apply();
            }
        } else {
            port_vrf.apply();
        }
    }
}

#endif
