"""Hosts as Linux network namespaces, each wired to a switch port by a veth pair.

The run that creates them removes them (context manager, also on error and
Ctrl-C). Addresses come only from the documentation ranges, no host has a
default route, so nothing can leave the machine. Neighbours are static, so
no ARP or neighbour discovery is needed for hosts on one segment.
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


@dataclass(frozen=True)
class HostSpec:
    name: str
    port: int
    mac: str
    addresses: tuple[str, ...] = ()  # interface addresses with prefix, e.g. "192.0.2.10/24"
    routes: tuple[tuple[str, str], ...] = ()  # (prefix, via)
    mtu: int = 1500  # a mediation device's link needs room for copies of full-size packets

    def interfaces(self) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        out = [ipaddress.ip_interface(a) for a in self.addresses]
        for iface in out:
            if not any(iface.ip in net for net in DOCUMENTATION_NETS):
                raise ValueError(f"{self.name}: {iface} is not in a documentation range")
        return out


@dataclass
class NamespaceHost:
    spec: HostSpec
    netns: str
    switch_end: str
    extra: dict = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.spec.port

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise VethError(f"[{self.spec.name}] {' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv), **kw)


def _ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise VethError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _create(spec: HostSpec, prefix: str) -> NamespaceHost:
    netns, switch_end, tmp_end = f"{prefix}-{spec.name}", f"{prefix}{spec.port}s", f"{prefix}{spec.port}h"
    _ip("netns", "del", netns, check=False)
    if interface_exists(switch_end):
        _ip("link", "del", switch_end, check=False)
    _ip("netns", "add", netns)
    host = NamespaceHost(spec, netns, switch_end)
    _ip("link", "add", switch_end, "type", "veth", "peer", "name", tmp_end)
    _ip("link", "set", tmp_end, "netns", netns)
    with open(f"/proc/sys/net/ipv6/conf/{switch_end}/disable_ipv6", "w") as f:
        f.write("1")
    _ip("link", "set", switch_end, "mtu", str(COPY_HEADROOM_MTU), "up")
    host.run("ip", "link", "set", tmp_end, "name", "eth0")
    host.run("ip", "link", "set", "eth0", "address", spec.mac, "mtu", str(spec.mtu))
    host.run("sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0", "net.ipv6.conf.eth0.router_solicitations=0")
    # Make the veth behave like a wire. Left alone it hands TCP/UDP checksums
    # to the "NIC" (a software switch forwards them unfilled and the receiver
    # drops them) and carries 64 kB TCP super-frames (segmentation and receive
    # offloads) that no real link carries and no intercept copy could hold.
    for end, prefix_cmd in (("eth0", host.command()), (switch_end, [])):
        subprocess.run([*prefix_cmd, "ethtool", "-K", end, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
                       capture_output=True, check=True)
    host.run("ip", "link", "set", "lo", "up")
    host.run("ip", "link", "set", "eth0", "up")
    for iface in spec.interfaces():
        extra = ["nodad"] if iface.version == 6 else []
        host.run("ip", "addr", "add", str(iface), "dev", "eth0", *extra)
    for prefix_, via in spec.routes:
        host.run("ip", "route", "add", prefix_, "via", via, "dev", "eth0")
    return host


def _destroy(host: NamespaceHost) -> None:
    _ip("netns", "del", host.netns, check=False)
    if interface_exists(host.switch_end):
        _ip("link", "del", host.switch_end, check=False)


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
        for host in hosts.values():
            for other in hosts.values():
                if other is host:
                    continue
                for iface in other.spec.interfaces():
                    host.run("ip", "neigh", "replace", str(iface.ip), "lladdr", other.spec.mac, "dev", "eth0",
                             "nud", "permanent", check=False)
        yield hosts
