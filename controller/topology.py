"""What the controller knows about a switch's surroundings.

The MIB speaks of ifIndexes, VRF names and mediation-device addresses; the
pipeline of port numbers, VRF ids and next hops. `SwitchTopology` is the
translation, read from the switch's config file. It is also where the
forwarding state (router MACs, L2 and routes) is declared.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.ets import EtsConfig
from controller.model import InterceptError, IPAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NextHop:
    """Where a packet leaves the switch and with which MAC addresses."""

    port: int
    src_mac: str
    dst_mac: str


@dataclass(frozen=True)
class Route:
    vrf: int
    prefix: IPNetwork
    next_hop: NextHop


@dataclass(frozen=True)
class L2Entry:
    mac: str
    port: int


@dataclass(frozen=True)
class FloodGroup:
    """A broadcast domain: MAC ff:ff:ff:ff:ff:ff goes to every port in it."""

    group_id: int
    ports: tuple[int, ...]


@dataclass
class SwitchTopology:
    """Ports, VRFs, forwarding and intercept delivery settings of one switch.

    `ports` maps ifIndex (as the MIB's citapStreamInterface and
    cTap2MediationSrcInterface name it) to the pipeline's port number.
    `vrfs` maps VRF names (citapStreamVRF) to ids; "" is the global table, 0.
    A packet's VRF comes from `vlan_vrfs` for its (port, VLAN), else from
    `port_vrfs` for its port, else it is 0.
    `tap_sources` are the switch's own addresses that intercept copies are
    sent from, per IP version, and `tap_source_port` their UDP source port.
    `ets` is the RFC 4190 conditioning (None: ETS marks pass untouched).
    """

    ports: dict[int, int] = field(default_factory=dict)
    vrfs: dict[str, int] = field(default_factory=lambda: {"": 0})
    port_vrfs: dict[int, int] = field(default_factory=dict)
    vlan_vrfs: dict[tuple[int, int], int] = field(default_factory=dict)  # (port, VLAN id) -> VRF id
    router_macs: tuple[str, ...] = ()
    l2: tuple[L2Entry, ...] = ()
    flood: FloodGroup | None = None
    routes: tuple[Route, ...] = ()
    tap_sources: dict[int, IPAddress] = field(default_factory=dict)
    tap_source_port: int = 0
    ets: EtsConfig | None = None

    def ingress_port(self, ifindex: int) -> int:
        try:
            return self.ports[ifindex]
        except KeyError:
            known = ", ".join(str(i) for i in sorted(self.ports)) or "none"
            raise InterceptError(f"no switch port has ifIndex {ifindex} (known: {known})") from None

    def vrf_id(self, name: str) -> int:
        try:
            return self.vrfs[name]
        except KeyError:
            raise InterceptError(f"unknown VRF {name!r}") from None

    def route_to(self, address: IPAddress, src_interface: int = 0, vrf: int = 0) -> NextHop:
        """Longest-prefix match of a mediation device's address in `routes`.

        When the mediation names a source interface, only routes leaving by
        that interface count (cTap2MediationSrcInterface).
        """
        want_port = self.ingress_port(src_interface) if src_interface else None
        best: Route | None = None
        for route in self.routes:
            if route.vrf != vrf or address.version != route.prefix.version or address not in route.prefix:
                continue
            if want_port is not None and route.next_hop.port != want_port:
                continue
            if best is None or route.prefix.prefixlen > best.prefix.prefixlen:
                best = route
        if best is None:
            via = f" via ifIndex {src_interface}" if src_interface else ""
            raise InterceptError(f"no route to mediation device {address}{via}")
        return best.next_hop

    def tap_source(self, version: int) -> IPAddress:
        try:
            return self.tap_sources[version]
        except KeyError:
            raise InterceptError(
                f"no IPv{version} tap source address configured: cannot deliver to an IPv{version} mediation device"
            ) from None
