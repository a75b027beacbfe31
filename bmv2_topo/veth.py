"""veth pairs for a switch's ports, created by the run that needs them and
removed by it again.

Each pair has a switch end (handed to bmv2 as `-i PORT@IFACE`) and a host end
(where PTF, a test or a namespace sends and listens). IPv6 is disabled on
both ends so the kernel's own router solicitations and MLD reports never
appear as unexpected packets, and the MTU leaves room for encapsulated
copies of full-size frames.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

COPY_HEADROOM_MTU = 9000


class VethError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise VethError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass  # the interface may be gone, or IPv6 compiled out; both are harmless here


def interface_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


@dataclass(frozen=True)
class VethPair:
    port: int
    switch_end: str
    host_end: str


def create_pair(port: int, switch_end: str, host_end: str, mtu: int = COPY_HEADROOM_MTU) -> VethPair:
    if interface_exists(switch_end):
        _ip("link", "del", switch_end, check=False)
    _ip("link", "add", switch_end, "type", "veth", "peer", "name", host_end)
    for end in (switch_end, host_end):
        _sysctl(f"net.ipv6.conf.{end}.disable_ipv6", "1")
        _ip("link", "set", end, "mtu", str(mtu))
        _ip("link", "set", end, "up")
    return VethPair(port, switch_end, host_end)


def delete_pair(pair: VethPair) -> None:
    if interface_exists(pair.switch_end):
        _ip("link", "del", pair.switch_end, check=False)


def tagged(prefix: str) -> str:
    """`prefix` plus $P4TAP_NET_TAG (up to 3 lowercase letters or digits).

    Interface and namespace names are global to the machine: two runs that
    share it (two developers' test runs, a benchmark beside a test, the
    workers of one parallel test run) each set their own tag so that neither
    deletes the other's veths. Three characters keep the longest name the
    project makes within Linux's 15.
    """
    tag = os.environ.get("P4TAP_NET_TAG", "")
    if not re.fullmatch(r"[a-z0-9]{0,3}", tag):
        raise VethError(f"P4TAP_NET_TAG={tag!r}: want at most 3 lowercase letters or digits")
    return prefix + tag


@contextmanager
def veth_pairs(ports: list[int], prefix: str = "p4t") -> Iterator[list[VethPair]]:
    """veth pairs for `ports`, named PREFIX<port>s / PREFIX<port>h, removed on exit."""
    if os.geteuid() != 0:
        raise VethError("creating veth pairs needs root")
    prefix = tagged(prefix)
    pairs: list[VethPair] = []
    try:
        for port in ports:
            pairs.append(create_pair(port, f"{prefix}{port}s", f"{prefix}{port}h"))
        yield pairs
    finally:
        for pair in pairs:
            delete_pair(pair)
