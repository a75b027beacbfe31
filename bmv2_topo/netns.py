"""Hosts as Linux network namespaces, each wired to switch ports (or to
another host) by veth pairs.

The run that creates them removes them (context manager, also on error and
Ctrl-C). Addresses come only from the documentation ranges, no host has a
default route, so nothing can leave the machine. Neighbours are static, so
no ARP or neighbour discovery is needed for hosts on one segment.

A host is described by a `HostSpec`: its first interface `eth0` on a switch
port (`port`, `mac`, `addresses`), and any further interfaces in `ifaces`:
on another switch (a multi-homed host) or straight to another host's
interface (a management link that bypasses the switches). The same specs
drive the Mininet backend (bmv2_topo/mininet_topo.py); what configures a host
from the inside (`configure_host`) is shared by both.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from bmv2_topo.veth import COPY_HEADROOM_MTU, VethError, interface_exists, tagged

DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in
                      ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
DEFAULT_SWITCH = "s1"


@dataclass(frozen=True)
class Iface:
    """One interface of a host: on a switch port, or linked to `peer` = (host, interface)."""

    name: str
    mac: str
    addresses: tuple[str, ...] = ()  # with prefix, e.g. "192.0.2.10/24"
    mtu: int = 1500
    switch: str = DEFAULT_SWITCH
    port: int | None = None
    peer: tuple[str, str] | None = None

    def interfaces(self, host: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        out = [ipaddress.ip_interface(a) for a in self.addresses]
        for iface in out:
            if not any(iface.ip in net for net in DOCUMENTATION_NETS):
                raise ValueError(f"{host}: {iface} is not in a documentation range")
        return out


@dataclass(frozen=True)
class HostSpec:
    name: str
    port: int | None = None  # eth0's port on switch `switch`; None: no eth0 on a switch
    mac: str = ""
    addresses: tuple[str, ...] = ()  # eth0's addresses with prefix, e.g. "192.0.2.10/24"
    routes: tuple[str, ...] = ()  # `ip route add` arguments, e.g. "192.0.2.21/32 dev eth1 src 192.0.2.10"
    mtu: int = 1500  # a mediation device's link needs room for copies of full-size packets
    ifaces: tuple[Iface, ...] = ()  # further interfaces
    rules: tuple[str, ...] = ()  # `ip rule add` arguments (a multi-homed host answers on the path asked)
    switch: str = DEFAULT_SWITCH

    def all_ifaces(self) -> list[Iface]:
        first = [Iface("eth0", self.mac, self.addresses, self.mtu, self.switch, self.port)] if self.port else []
        return first + list(self.ifaces)

    def interfaces(self) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [a for i in self.all_ifaces() for a in i.interfaces(self.name)]

    @property
    def multihomed(self) -> bool:
        return len(self.all_ifaces()) > 1


def switch_end_name(prefix: str, switch: str, port: int) -> str:
    """The switch side of a host link, in the root namespace (at most 15 characters)."""
    name = f"{prefix}{port}s" if switch == DEFAULT_SWITCH else f"{prefix}{switch}{port}"
    if len(name) > 15:
        raise VethError(f"interface name {name!r} is longer than 15 characters: shorten the switch name")
    return name


class HostCommands:
    """Running commands in a host; `command(*argv)` says how to enter it.
    Shared by both backends (NamespaceHost here, MininetHost in mininet_topo.py)."""

    spec: HostSpec
    switch_ends: dict[str, str]

    def command(self, *argv: str) -> list[str]:
        raise NotImplementedError

    @property
    def port(self) -> int | None:
        return self.spec.port

    @property
    def switch_end(self) -> str:
        """The switch side of eth0."""
        return self.switch_ends["eth0"]

    def run(self, *argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            why = result.stderr.strip() or result.stdout.strip()
            raise VethError(f"[{self.spec.name}] {' '.join(argv)} failed: {why}")
        return result

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv), **kw)


@dataclass
class NamespaceHost(HostCommands):
    """A host to run commands in. `switch_ends` maps each of its interfaces on
    a switch to the switch-side interface in the root namespace."""

    spec: HostSpec
    netns: str
    switch_ends: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]


def _ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise VethError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def prepare_switch_end(name: str) -> None:
    """The switch side: no IPv6 (no kernel chatter on the switch's port), room
    for copies, no offloads, up."""
    with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
        f.write("1")
    _ip("link", "set", name, "mtu", str(COPY_HEADROOM_MTU), "up")
    subprocess.run(["ethtool", "-K", name, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
                   capture_output=True, check=True)


def configure_host(host, spec: HostSpec) -> None:
    """Configure a host from the inside, its interfaces already in place and
    named (`host.run` runs a command in its namespace)."""
    host.run("sysctl", "-qw", "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0")
    if spec.multihomed:
        # A multi-homed host receives for an address of one interface on the
        # other: loose source validation, as on a real multi-homed server.
        host.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
    for iface in spec.all_ifaces():
        host.run("ip", "link", "set", iface.name, "address", iface.mac, "mtu", str(iface.mtu))
        host.run("sysctl", "-qw", f"net.ipv6.conf.{iface.name}.accept_ra=0",
                 f"net.ipv6.conf.{iface.name}.router_solicitations=0")
        if spec.multihomed:
            host.run("sysctl", "-qw", f"net.ipv4.conf.{iface.name}.rp_filter=0")
        # Make the veth behave like a wire. Left alone it hands TCP/UDP checksums
        # to the "NIC" (a software switch forwards them unfilled and the receiver
        # drops them) and carries 64 kB TCP super-frames (segmentation and receive
        # offloads) that no real link carries and no intercept copy could hold.
        host.run("ethtool", "-K", iface.name, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
    host.run("ip", "link", "set", "lo", "up")
    for iface in spec.all_ifaces():
        host.run("ip", "link", "set", iface.name, "up")
        for address in iface.interfaces(spec.name):
            extra = ["nodad"] if address.version == 6 else []
            host.run("ip", "addr", "add", str(address), "dev", iface.name, *extra)
    for route in spec.routes:
        host.run("ip", "route", "add", *route.split())
    for rule in spec.rules:
        host.run("ip", "rule", "add", *rule.split())


def static_neighbours(hosts: dict, specs: Sequence[HostSpec]) -> None:
    """Every host learns the MAC of every address on a segment it shares with
    it: the same switch, or a direct link. No ARP, no neighbour discovery."""
    def segment(spec: HostSpec, iface: Iface) -> tuple:
        if iface.peer is not None:
            return ("link", *sorted([(spec.name, iface.name), iface.peer]))
        return ("switch", iface.switch)

    placed = [(spec, iface, segment(spec, iface)) for spec in specs for iface in spec.all_ifaces()]
    for spec, iface, seg in placed:
        for other, other_iface, other_seg in placed:
            if other.name == spec.name or other_seg != seg:
                continue
            for address in other_iface.interfaces(other.name):
                hosts[spec.name].run("ip", "neigh", "replace", str(address.ip), "lladdr", other_iface.mac,
                                     "dev", iface.name, "nud", "permanent", check=False)


def _create(spec: HostSpec, prefix: str) -> NamespaceHost:
    netns = f"{prefix}-{spec.name}"
    _ip("netns", "del", netns, check=False)
    _ip("netns", "add", netns)
    host = NamespaceHost(spec, netns)
    try:
        for iface in spec.all_ifaces():
            if iface.peer is not None:
                continue  # made by _link_hosts, once both ends exist
            switch_end = switch_end_name(prefix, iface.switch, iface.port)
            tmp_end = f"{switch_end[:-1]}h" if switch_end.endswith("s") else f"{switch_end}h"
            if interface_exists(switch_end):
                _ip("link", "del", switch_end, check=False)
            _ip("link", "add", switch_end, "type", "veth", "peer", "name", tmp_end)
            _ip("link", "set", tmp_end, "netns", netns)
            host.run("ip", "link", "set", tmp_end, "name", iface.name)
            prepare_switch_end(switch_end)
            host.switch_ends[iface.name] = switch_end
    except BaseException:
        _destroy(host)
        raise
    return host


def _link_hosts(hosts: dict[str, NamespaceHost], specs: Sequence[HostSpec], prefix: str) -> None:
    done: set[tuple[str, str]] = set()
    for n, spec in enumerate(specs):
        for iface in spec.all_ifaces():
            if iface.peer is None or (spec.name, iface.name) in done:
                continue
            other_host, other_iface = iface.peer
            if other_host not in hosts:
                raise VethError(f"{spec.name}.{iface.name}: no host {other_host!r} to link to")
            a, b = f"{prefix}x{n}a", f"{prefix}x{n}b"
            _ip("link", "add", a, "type", "veth", "peer", "name", b)
            _ip("link", "set", a, "netns", hosts[spec.name].netns)
            _ip("link", "set", b, "netns", hosts[other_host].netns)
            hosts[spec.name].run("ip", "link", "set", a, "name", iface.name)
            hosts[other_host].run("ip", "link", "set", b, "name", other_iface)
            done |= {(spec.name, iface.name), (other_host, other_iface)}


def _destroy(host: NamespaceHost) -> None:
    _ip("netns", "del", host.netns, check=False)
    for switch_end in host.switch_ends.values():
        if interface_exists(switch_end):
            _ip("link", "del", switch_end, check=False)


@contextmanager
def namespace_hosts(specs: Sequence[HostSpec], prefix: str = "p4tap") -> Iterator[dict[str, NamespaceHost]]:
    """Create the hosts, give each the others' static neighbour entries, yield
    them by name, and remove everything on exit."""
    if os.geteuid() != 0:
        raise VethError("network namespaces need root")
    prefix = tagged(prefix)
    hosts: dict[str, NamespaceHost] = {}
    with ExitStack() as cleanup:
        for spec in specs:
            host = _create(spec, prefix)
            cleanup.callback(_destroy, host)
            hosts[spec.name] = host
        _link_hosts(hosts, specs, prefix)
        for spec in specs:
            configure_host(hosts[spec.name], spec)
        static_neighbours(hosts, specs)
        yield hosts
