/*
 * p4tap: table sizes. What the controller may install is what P4Info says
 * (it reads each table's size from there), so a target sets any of these
 * in its arch.p4, before this file, to fit its memories; the rest keep the
 * defaults, which are bmv2's (no memory to fit there, only host RAM).
 */
#ifndef P4TAP_SIZES_P4
#define P4TAP_SIZES_P4

#ifndef P4TAP_L2_SIZE
#define P4TAP_L2_SIZE            4096    // (VLAN, MAC) entries
#endif
#ifndef P4TAP_PORT_VLAN_VRF_SIZE
#define P4TAP_PORT_VLAN_VRF_SIZE 4096
#endif
#ifndef P4TAP_PORT_VRF_SIZE
#define P4TAP_PORT_VRF_SIZE      512
#endif
#ifndef P4TAP_IPV4_ROUTES_SIZE
#define P4TAP_IPV4_ROUTES_SIZE   16384
#endif
#ifndef P4TAP_IPV6_ROUTES_SIZE
#define P4TAP_IPV6_ROUTES_SIZE   16384
#endif
// Intercepts: gates (prefixes), filters (regions), merged session pairs and
// replicas (one per mediation, cTap2MediationTable rows).
#ifndef P4TAP_IPV4_GATE_SIZE
#define P4TAP_IPV4_GATE_SIZE     32768
#endif
#ifndef P4TAP_IPV6_GATE_SIZE
#define P4TAP_IPV6_GATE_SIZE     16384
#endif
#ifndef P4TAP_IPV4_FILTER_SIZE
#define P4TAP_IPV4_FILTER_SIZE   32768
#endif
#ifndef P4TAP_IPV6_FILTER_SIZE
#define P4TAP_IPV6_FILTER_SIZE   16384
#endif
#ifndef P4TAP_MERGE_SIZE
#define P4TAP_MERGE_SIZE         16384
#endif
#ifndef P4TAP_REPLICAS
#define P4TAP_REPLICAS           65536
#endif
// ETS (RFC 4190): (port, TOS) marks per family, and one meter per port.
#ifndef P4TAP_ETS_MARKS_SIZE
#define P4TAP_ETS_MARKS_SIZE     8192
#endif
#ifndef P4TAP_ETS_PORTS
#define P4TAP_ETS_PORTS          512
#endif

#endif
