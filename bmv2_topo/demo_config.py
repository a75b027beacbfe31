"""The configs of one demo run, written with fresh SNMPv3 keys: the IAP's
controller config (its switches over P4Runtime on unix sockets), its SNMP
agent config (one lawful-intercept user, informs to the MD) and the MD's
(its intercepts and agencies). Each is mode 0600.
"""

from __future__ import annotations

import secrets
import textwrap
from pathlib import Path

from bmv2_topo.layouts import IAP_MGMT, INFORM_PORT, MD_ADDRESS, MD_MGMT, MD_PORT, ROUTER_MAC, SNMP_PORT, Layout
from mediation.stream_filter import Filter
from mib_bridge.config import one_user_toml


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _filter_toml(f: Filter) -> str:
    """A filter as md.toml writes it (an inline table: TOML keeps it on one line)."""
    fields = [f'src = "{f.src}"' if f.src else "", f'dst = "{f.dst}"' if f.dst else "",
              f"protocol = {f.protocol}" if f.protocol != -1 else "",
              f"dst_ports = [{f.dst_ports[0]}, {f.dst_ports[1]}]" if f.dst_ports != (0, 65535) else ""]
    return "{ " + ", ".join(x for x in fields if x) + " }"


def write_configs(out: Path, layout: Layout, sockets: dict[str, str], lifetime: float,
                  intercepts: dict[int, tuple[Filter, ...]], agencies: dict[str, frozenset[int]],
                  md_extra: str = "") -> dict[str, Path]:
    """The IAP's controller and agent configs and the MD's, with fresh keys;
    `md_extra` is more of the MD's TOML (the radius variant's signalling)."""
    auth, priv = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    switches = []
    for plan in layout.switches:
        topo = layout.topology(plan)
        route = topo.routes[0]
        route_toml = (f'{{ prefix = "{route.prefix}", port = {route.next_hop.port}, src_mac = "{ROUTER_MAC}", '
                      f'dst_mac = "{route.next_hop.dst_mac}" }}')  # TOML inline tables stay on one line
        switches.append(textwrap.dedent(f"""
            [[switch]]
            name = "{plan.name}"
            address = "unix:{sockets[plan.name]}"
            tap_source_ipv4 = "{plan.tap_source}"
            tap_source_port = {topo.tap_source_port}
            ports = [{", ".join(f"{{ port = {p}, ifindex = {p} }}" for p in sorted(topo.ports))}]
            l2 = [{", ".join(f'{{ mac = "{e.mac}", port = {e.port} }}' for e in topo.l2)}]
            routes = [{route_toml}]
        """))
    controller = _private(out / "p4tap.toml", textwrap.dedent("""
        [controller]
        state_dir = "iap-state"
        control_socket = "iap-state/control.sock"
    """) + "".join(switches))
    agent = _private(out / "snmp.toml", one_user_toml([f"{IAP_MGMT}:{SNMP_PORT}"], "md1", auth, priv,
                                                       sys_name="p4tap-demo-iap", notify=[f"{MD_MGMT}:{INFORM_PORT}"]))
    md = _private(out / "md.toml", textwrap.dedent(f"""
        [content]
        listen = ["{MD_ADDRESS}:{MD_PORT}"]
        out_dir = "md"

        [iap]
        address = "{IAP_MGMT}:{SNMP_PORT}"
        user = "md1"
        auth_protocol = "SHA-256"
        auth_key = "{auth}"
        priv_protocol = "AES"
        priv_key = "{priv}"
        timeout = 1.0
        retries = 2
        audit_interval = 1.0

        [informs]
        listen = "{MD_MGMT}:{INFORM_PORT}"
    """) + "".join(f'\n[[intercept]]\ncontent_id = {cccid}\nmd = "{MD_ADDRESS}:{MD_PORT}"\nlifetime = {lifetime}\n'
                   f'filters = [{", ".join(_filter_toml(f) for f in filters)}]\n'
                   for cccid, filters in sorted(intercepts.items()))
      + "".join(f'\n[[agency]]\nname = "{name}"\ncccids = {sorted(ids)}\nfile = "{name}"\n'
                for name, ids in agencies.items()) + md_extra)
    return {"controller": controller, "agent": agent, "md": md}


def signalling_toml(port: int, lifetime: float, servers: tuple[tuple[str, str, int], ...],
                    targets: tuple[tuple[int, str, str], ...]) -> str:
    """The MD's identity intercepts, as write_configs' `md_extra`: the IRI function's
    [signalling] on the MD's address and `port`, the operator's servers it keeps
    standing taps on, each (table, address, CCCID), e.g. ("sip_server",
    "192.0.2.21", 90002), and the warrants, each (CCCID, identity key, value),
    e.g. (6000, "sip_user", "user-0")."""
    return (f'\n[signalling]\nlisten = "{MD_ADDRESS}:{port}"\nlifetime = {lifetime}\n'
            + "".join(f'\n[[{table}]]\naddress = "{address}"\ncontent_id = {cccid}\n'
                      for table, address, cccid in servers)
            + "".join(f'\n[[identity_target]]\ncontent_id = {cccid}\n{key} = "{value}"\nlifetime = {lifetime}\n'
                      for cccid, key, value in targets))
