"""The same hosts as bmv2_topo/netns.py, built with Mininet (Debian's
`mininet` package), for those who know Mininet and want `mnexec`/`m`-style
access to the hosts while the demo runs.

What is used of Mininet: its `Host` (a shell in a network namespace of its
own) and `Link` (a veth pair, named and given MACs). What is not: the
`Mininet` network object, its controller and Open vSwitch. The `Mininet`
object would assign every host an address in 10.0.0.0/8 (outside the
documentation ranges p4tap may use) and start an OpenFlow controller nobody
needs: the switch here is bmv2 (`simple_switch_grpc`) or p4tap's softswitch,
started by bmv2_topo/bmv2_switch.py on the switch-side interfaces, which
live in the root namespace exactly as with the plain-namespace backend. The
switch side of the links belongs to a root-namespace Mininet `Node`.

Debian installs Mininet for the system Python (/usr/lib/python3/dist-packages);
p4tap's venv loads just that package from there (it needs only the standard
library). `mininet_skip_reason()` says why it cannot be used, if so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.netns import (
    HostCommands,
    HostSpec,
    configure_host,
    prepare_switch_end,
    static_neighbours,
    switch_end_name,
)
from bmv2_topo.veth import VethError, tagged

DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


def load_mininet():
    """The `mininet` package: importable as is, or from Debian's dist-packages."""
    try:
        return importlib.import_module("mininet")
    except ImportError:
        pass
    package = DEBIAN_DIST_PACKAGES / "mininet"
    if not (package / "__init__.py").exists():
        raise ImportError("Mininet is not installed: apt-get install --no-install-recommends mininet (make setup does)")
    spec = importlib.util.spec_from_file_location("mininet", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["mininet"] = module
    spec.loader.exec_module(module)
    return module


def mininet_skip_reason() -> str | None:
    """Why the Mininet backend cannot run here, or None."""
    try:
        load_mininet()
        importlib.import_module("mininet.node")
    except ImportError as error:
        return str(error)
    for tool in ("mnexec", "ifconfig"):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing: apt-get install mininet (make setup does)"
    return None


@dataclass
class MininetHost(HostCommands):
    """A Mininet host, driven like a NamespaceHost: commands run in its
    namespace through `mnexec -a PID`."""

    spec: HostSpec
    node: object
    switch_ends: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.node.pid

    def command(self, *argv: str) -> list[str]:
        return ["mnexec", "-a", str(self.pid), *argv]


@contextmanager
def mininet_hosts(specs: Sequence[HostSpec], prefix: str = "p4tap") -> Iterator[dict[str, MininetHost]]:
    """Mininet hosts and links for `specs`, yielded by name like
    `namespace_hosts`; every host, link and shell is gone on exit."""
    if os.geteuid() != 0:
        raise VethError("Mininet needs root")
    reason = mininet_skip_reason()
    if reason is not None:
        raise VethError(reason)
    node_mod = importlib.import_module("mininet.node")
    link_mod = importlib.import_module("mininet.link")
    prefix = tagged(prefix)
    hosts: dict[str, MininetHost] = {}
    with ExitStack() as cleanup:
        # One root-namespace node owns the switch sides of all links (the
        # switches are processes started on those interfaces, not Mininet nodes).
        root = node_mod.Node(f"{prefix}-sw", inNamespace=False)
        cleanup.callback(root.terminate)
        for spec in specs:
            node = node_mod.Host(f"{prefix}-{spec.name}")
            cleanup.callback(node.terminate)
            hosts[spec.name] = MininetHost(spec, node)
        linked: set[tuple[str, str]] = set()
        for spec in specs:
            host = hosts[spec.name]
            for iface in spec.all_ifaces():
                if iface.peer is not None:
                    if (spec.name, iface.name) in linked:
                        continue
                    other = hosts[iface.peer[0]]
                    link = link_mod.Link(host.node, other.node, intfName1=iface.name, intfName2=iface.peer[1])
                    linked |= {(spec.name, iface.name), iface.peer}
                else:
                    switch_end = switch_end_name(prefix, iface.switch, iface.port)
                    link = link_mod.Link(host.node, root, intfName1=iface.name, intfName2=switch_end)
                    prepare_switch_end(switch_end)
                    host.switch_ends[iface.name] = switch_end
                cleanup.callback(_delete_link, link)
        for spec in specs:
            configure_host(hosts[spec.name], spec)
        static_neighbours(hosts, specs)
        yield hosts


def _delete_link(link) -> None:
    try:
        link.delete()
    except Exception:  # the namespace (and with it one end) may be gone already
        pass
