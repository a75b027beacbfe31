"""The controller's config file (TOML): its files, and per switch the address,
credentials, ports, VRFs, forwarding and intercept delivery settings.

    [controller]
    state_dir = "/var/lib/p4tap"          # intent.db and audit.jsonl live here
    control_socket = "/run/p4tap/control.sock"
    target = "bmv2"                       # or "tofino" / "tofino2": the pipeline build/ holds for it
    device_config = "pi"                  # Tofino only: "pi" (bf_switchd's P4Runtime server) or
                                          # "stratum" (stratum_bfrt's BfPipelineConfig)

    [[switch]]
    name = "access1"
    address = "127.0.0.1:9559"          # plaintext only on loopback, unless allow_plaintext = true
    device_id = 0
    election_id = 1
    tap_source_ipv4 = "203.0.113.1"     # copies are sent from here
    tap_source_port = 49152
    router_macs = ["02:00:00:00:00:fe"]
    vrfs = { red = 7 }
    ports = [ { port = 1, ifindex = 1, vrf = "" }, { port = 4, ifindex = 4 } ]
    vlan_vrfs = [ { port = 1, vid = 100, vrf = "red" } ]
    l2 = [ { mac = "02:00:00:00:00:01", port = 1 } ]
    flood = { group = 1, ports = [1, 2, 3, 4] }
    # RFC 4190 ETS (optional): untrusted ports get ETS marks reset; trusted ones
    # are classified and capped. The switch must run with priority_queues queues.
    ets = { ports = [1, 4], trusted_ports = [4], media_dscp = [46], signalling_dscp = [26],
            rate_bytes = 125000, burst_bytes = 15000, preemptive = false, priority_queues = 3 }
    routes = [ { prefix = "203.0.113.10/32", port = 4, src_mac = "02:00:00:00:00:fe", dst_mac = "02:00:00:00:00:04" } ]
    # tls = { ca_cert = "ca.pem", client_cert = "c.pem", client_key = "c.key" }
    # replication_groups = 65536        # the switch's clone sessions + multicast groups (bmv2 --max-mc-groups):
                                        # a provision needing more is refused before it is committed
    # max_clone_session_id = 1015       # below the pipeline's mirror id width, if the switch needs it
                                        # (Tofino 1: 1016..1023 are coalescing sessions)
    # lease_seconds = 3600              # how long the switch ends copies on its own clock with the
                                        # controller away (fail safe: past it, every copy stops)

Every mistake is reported with the switch and key it concerns.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from controller import ets, toml_fields
from controller.clock import LEASE
from controller.pipeline import mac_to_int
from controller.switch_config import SwitchConfig
from controller.switch import TlsConfig
from controller.tofino_config import FORMATS, TARGETS
from controller.toml_fields import ConfigError  # one error type for every config file
from controller.topology import FloodGroup, L2Entry, NextHop, Route, SwitchTopology

DEFAULT_STATE_DIR = Path("/var/lib/p4tap")
DEFAULT_CONTROL_SOCKET = Path("/run/p4tap/control.sock")


@dataclass
class ControllerSettings:
    state_dir: Path
    control_socket: Path
    switches: list[SwitchConfig]
    target: str = "bmv2"
    device_config: str = "pi"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "intent.db"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    # The controller's config holds no keys, so its errors may quote the bad value.
    return toml_fields.get(table, key, kind, where, default, show_value=True)


def _mac(value: Any, where: str) -> str:
    try:
        mac_to_int(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a MAC address") from None
    return str(value).lower()


def _ets(raw: dict[str, Any], where: str) -> ets.EtsConfig | None:
    if "ets" not in raw:
        return None
    try:
        return ets.from_dict(_get(raw, "ets", dict, where), f"{where} ets")
    except ets.EtsConfigError as error:
        raise ConfigError(str(error)) from None


def _switch(raw: dict[str, Any], base: Path) -> SwitchConfig:
    name = _get(raw, "name", str, "[[switch]]")
    where = f"switch {name!r}"
    vrfs = {"": 0} | {str(k): int(v) for k, v in _get(raw, "vrfs", dict, where, {}).items()}
    ports, port_vrfs = {}, {}
    for i, p in enumerate(_get(raw, "ports", list, where, [])):
        port = _get(p, "port", int, f"{where} ports[{i}]")
        ports[_get(p, "ifindex", int, f"{where} ports[{i}]", port)] = port
        vrf_name = _get(p, "vrf", str, f"{where} ports[{i}]", "")
        if vrf_name not in vrfs:
            raise ConfigError(f"{where} ports[{i}]: unknown vrf {vrf_name!r}")
        if vrfs[vrf_name]:
            port_vrfs[port] = vrfs[vrf_name]
    vlan_vrfs = {}
    for i, v in enumerate(_get(raw, "vlan_vrfs", list, where, [])):
        w = f"{where} vlan_vrfs[{i}]"
        vrf_name = _get(v, "vrf", str, w)
        if vrf_name not in vrfs:
            raise ConfigError(f"{w}: unknown vrf {vrf_name!r}")
        vlan_vrfs[(_get(v, "port", int, w), _get(v, "vid", int, w))] = vrfs[vrf_name]
    routes = []
    for i, r in enumerate(_get(raw, "routes", list, where, [])):
        w = f"{where} routes[{i}]"
        try:
            prefix = ipaddress.ip_network(_get(r, "prefix", str, w))
        except ValueError as error:
            raise ConfigError(f"{w}: {error}") from None
        vrf_name = _get(r, "vrf", str, w, "")
        if vrf_name not in vrfs:
            raise ConfigError(f"{w}: unknown vrf {vrf_name!r}")
        hop = NextHop(_get(r, "port", int, w), _mac(_get(r, "src_mac", str, w), w), _mac(_get(r, "dst_mac", str, w), w))
        routes.append(Route(vrfs[vrf_name], prefix, hop))
    flood = None
    if "flood" in raw:
        f = _get(raw, "flood", dict, where)
        flood = FloodGroup(_get(f, "group", int, f"{where} flood"), tuple(_get(f, "ports", list, f"{where} flood")))
    sources = {}
    for version in (4, 6):
        value = _get(raw, f"tap_source_ipv{version}", str, where, None)
        if value is not None:
            address = ipaddress.ip_address(value)
            if address.version != version:
                raise ConfigError(f"{where}: tap_source_ipv{version} {value} is not IPv{version}")
            sources[version] = address
    topology = SwitchTopology(
        ports=ports, vrfs=vrfs, port_vrfs=port_vrfs, vlan_vrfs=vlan_vrfs,
        router_macs=tuple(_mac(m, where) for m in _get(raw, "router_macs", list, where, [])),
        l2=tuple(L2Entry(_mac(e["mac"], where), int(e["port"])) for e in _get(raw, "l2", list, where, [])),
        flood=flood, routes=tuple(routes), tap_sources=sources,
        tap_source_port=_get(raw, "tap_source_port", int, where, 49152),
        ets=_ets(raw, where),
    )
    tls = None
    if "tls" in raw:
        t = _get(raw, "tls", dict, where)
        resolve = lambda key: (base / t[key]) if key in t else None  # noqa: E731
        tls = TlsConfig(ca_cert=resolve("ca_cert") or Path(_get(t, "ca_cert", str, f"{where} tls")),
                        client_cert=resolve("client_cert"), client_key=resolve("client_key"),
                        server_name_override=t.get("server_name"))
    return SwitchConfig(
        name=name, address=_get(raw, "address", str, where), topology=topology,
        device_id=_get(raw, "device_id", int, where, 0),
        election_id=(0, _get(raw, "election_id", int, where, 1)),
        tls=tls, allow_plaintext=_get(raw, "allow_plaintext", bool, where, None),
        replication_groups=_replication_groups(raw, where),
        max_clone_session_id=_at_least_one(raw, "max_clone_session_id", where),
        lease=_lease(raw, where),
    )


# A lease is renewed when half of it is left, so it must outlast a renewal's
# round trip with room to spare; and its end must stay within what the
# data plane's wrap-safe compare carries on every target (half the 2^31-tick
# horizon: 19.5 h on Tofino's 65.5 us ticks, the shortest).
LEASE_RANGE = (2, 70_000)


def _lease(raw: dict[str, Any], where: str) -> timedelta:
    value = _get(raw, "lease_seconds", int, where, int(LEASE.total_seconds()))
    low, high = LEASE_RANGE
    if not low <= value <= high:
        raise ConfigError(f"{where}: lease_seconds must be {low}..{high} (a lease is renewed at half; "
                          f"Tofino's clock carries at most {high} s ahead), got {value}")
    return timedelta(seconds=value)


def _at_least_one(raw: dict[str, Any], key: str, where: str) -> int | None:
    value = _get(raw, key, int, where, None)
    if value is not None and value < 1:
        raise ConfigError(f"{where}: {key} must be at least 1, got {value}")
    return value


def _replication_groups(raw: dict[str, Any], where: str) -> int | None:
    value = _get(raw, "replication_groups", int, where, None)
    if value is not None and value < 1:
        raise ConfigError(f"{where}: replication_groups must be at least 1, got {value}")
    return value


def load(path: Path) -> ControllerSettings:
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    base = path.parent
    controller = _get(raw, "controller", dict, str(path), {})
    switches = [_switch(s, base) for s in _get(raw, "switch", list, str(path))]
    names = [s.name for s in switches]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: switch names must be unique, got {names}")
    return ControllerSettings(
        state_dir=base / _get(controller, "state_dir", str, "[controller]", str(DEFAULT_STATE_DIR)),
        control_socket=base / _get(controller, "control_socket", str, "[controller]", str(DEFAULT_CONTROL_SOCKET)),
        switches=switches,
        target=_choice(controller, "target", tuple(TARGETS), "bmv2"),
        device_config=_choice(controller, "device_config", FORMATS, "pi"),
    )


def _choice(table: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = _get(table, key, str, "[controller]", default)
    if value not in allowed:
        raise ConfigError(f"[controller]: {key} must be one of {', '.join(allowed)}, got {value!r}")
    return value
