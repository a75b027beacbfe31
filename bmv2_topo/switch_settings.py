"""What a switch is told: its settings, and the command line, addresses and
files they make.

The launcher (bmv2_topo.bmv2_switch) runs one switch process; what that
process is started with is decided here, from the settings alone, so that
the command line can be read (``command()``, printed for manual debugging)
and checked without starting anything, and the launcher reads as the order
of starting and stopping.

Quirks of bmv2's command line handled here:

* ``--log-file X`` makes bmv2 (its bundled spdlog) write ``X.txt``; a
  :attr:`SwitchSettings.log_file` ending in ``.txt`` is used as is, any
  other name gets ``.txt`` appended; :attr:`SwitchSettings.log_path` is the
  real file.
* ``--grpc-server-addr``, ``--cpu-port`` and ``--priority-queues`` are
  *target* options and must come after ``--``.
* ``--thrift-port`` / ``--notifications-addr`` only exist when bmv2 was built
  with Thrift / nanomsg; ``--help`` is read once and only what the binary
  understands is passed.
* Each instance gets its own gRPC port, Thrift port and nanomsg socket (free
  ports on 127.0.0.1, files in its workdir), never bmv2's fixed defaults
  (9559, 9090, ``ipc:///tmp/bmv2-<device-id>-notifications.ipc``).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.switch_probes import free_tcp_port, help_text
from bmv2_topo.switch_targets import SKIP_REASON, Bmv2Error, find_simple_switch_grpc, resolve_target

__all__ = ["LOG_LEVELS", "P4TAP_CPU_PORT", "SwitchSettings"]

# p4tap's CPU port (p4src/v1model/arch.p4): the controller's clock probes
# come in and go back by it, so every switch is started with it.
P4TAP_CPU_PORT = 510

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")


@dataclass(eq=False)
class SwitchSettings:
    """How one ``simple_switch_grpc`` (or softswitch) is to be run.

    ``ports`` maps bmv2 port numbers to interface names (``-i P@IFACE``); the
    interfaces must exist (and live in ``netns`` when that is given).
    ``grpc_port`` / ``thrift_port`` default to free ports on 127.0.0.1.
    ``log_file`` defaults to ``<name>.log.txt`` in ``workdir`` (a temp dir unless
    given); ``log_level`` is ``warn`` by default because per-packet logging at
    ``trace`` (bmv2's default) slows the switch down several times.

    With ``netns`` the switch runs under ``ip netns exec NS``; its gRPC server
    then listens on a unix socket in ``workdir`` by default
    (``grpc_unix_socket``), because 127.0.0.1 inside the namespace is not
    reachable from the controller outside it.
    """

    ports: dict[int, str] = field(default_factory=dict)
    grpc_port: int | None = None
    device_id: int = 0
    thrift_port: int | None = None
    cpu_port: int | None = P4TAP_CPU_PORT
    priority_queues: int | None = None
    log_file: Path | None = None
    log_level: str = "warn"
    log_flush: bool = False
    extra_args: list[str] = field(default_factory=list)
    extra_target_args: list[str] = field(default_factory=list)
    netns: str | None = None
    grpc_unix_socket: bool | None = None
    json_config: Path | None = None
    workdir: Path | None = None
    binary: str | None = None
    # A command the switch runs under, e.g. valgrind (bench/pipeline_cost.py).
    wrapper: tuple[str, ...] = ()
    # Multicast groups of the replication engine (--max-mc-groups); every clone
    # session takes one. None: 65536, room for every session id p4tap allocates.
    replication_groups: int | None = None
    name: str = "bmv2"
    target: str | None = None

    # Whether the workdir and the gRPC port were chosen here, not given: the
    # launcher removes such a workdir at stop and picks another such port on a bind failure.
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _auto_grpc_port: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------ addresses and files

    @property
    def grpc_address(self) -> str:
        """Target string for :class:`controller.switch.SwitchConnection`."""
        if self._use_unix():
            return f"unix:{self._unix_socket_path()}"
        if self.grpc_port is None:
            raise Bmv2Error(f"{self.name}: gRPC port not chosen yet (call start())")
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path | None:
        """The file bmv2 actually logs to."""
        return self._log_file_resolved()

    @property
    def stdout_path(self) -> Path | None:
        return self.workdir / f"{self.name}.stdout.txt" if self.workdir else None

    def _use_unix(self) -> bool:
        return self.grpc_unix_socket if self.grpc_unix_socket is not None else self.netns is not None

    def _unix_socket_path(self) -> Path:
        self._ensure_workdir()
        return self.workdir / f"{self.name}.p4rt.sock"

    def _ensure_workdir(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"p4tap-{self.name}-"))
            self._own_workdir = True
        else:
            self.workdir = Path(self.workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)

    def _log_file_resolved(self) -> Path | None:
        """Where bmv2 really logs: ``log_file`` if it ends in .txt, else ``log_file`` + '.txt'."""
        if self.log_file is not None:
            p = Path(self.log_file)
            return p if p.name.endswith(".txt") else p.with_name(p.name + ".txt")
        return self.workdir / f"{self.name}.log.txt" if self.workdir else None

    # ------------------------------------------------------------ command line

    def command(self) -> list[str]:
        """The full command line (also useful to print for manual debugging)."""
        self.target = resolve_target(self.target)
        if self.target == "softswitch":
            program = [sys.executable, "-m", "softswitch"]
            # same options as bmv2 (its Thrift server only sets egress queues; no nanomsg)
            helptext = "--thrift-port --max-mc-groups --max-l1-entries --max-l2-entries"
        else:
            binary = self.binary or find_simple_switch_grpc()
            if binary is None:
                raise Bmv2Error(SKIP_REASON)
            program = [binary]
            helptext = help_text(binary)
        if self.log_level not in LOG_LEVELS:
            raise Bmv2Error(f"log_level must be one of {LOG_LEVELS}, not {self.log_level!r}")
        self._ensure_workdir()

        cmd: list[str] = []
        if self.netns:
            cmd += ["ip", "netns", "exec", self.netns]
        cmd += [*self.wrapper, *program]
        cmd += ["--device-id", str(self.device_id)]
        for port, iface in sorted(self.ports.items()):
            if self.cpu_port is not None and port == self.cpu_port:
                raise Bmv2Error(f"{self.name}: port {port} is the CPU port; do not attach an interface to it")
            cmd += ["-i", f"{port}@{iface}"]
        if "--thrift-port" in helptext:
            if self.thrift_port is None:
                self.thrift_port = free_tcp_port()
            cmd += ["--thrift-port", str(self.thrift_port)]
        if "--notifications-addr" in helptext:
            cmd += ["--notifications-addr", f"ipc://{self.workdir / (self.name + '.notifications.ipc')}"]
        # bmv2 appends ".txt" to --log-file; pass the name without it.
        log_arg = str(self._log_file_resolved())
        log_arg = log_arg[: -len(".txt")] if log_arg.endswith(".txt") else log_arg
        cmd += ["--log-file", log_arg, "--log-level", self.log_level]
        if self.log_flush:
            cmd.append("--log-flush")
        cmd += list(self.extra_args)
        if self.json_config is not None:
            cmd.append(str(self.json_config))
        else:
            cmd.append("--no-p4")

        cmd.append("--")
        if self._use_unix():
            cmd += ["--grpc-server-addr", f"unix:{self._unix_socket_path()}"]
        else:
            if self.grpc_port is None:
                self.grpc_port = free_tcp_port()
                self._auto_grpc_port = True
            cmd += ["--grpc-server-addr", f"127.0.0.1:{self.grpc_port}"]
        if self.cpu_port is not None:
            cmd += ["--cpu-port", str(self.cpu_port)]
        if self.priority_queues is not None:
            cmd += ["--priority-queues", str(self.priority_queues)]
        # bmv2's replication engine defaults to 4096 multicast groups and L1
        # nodes, and every clone session takes one of each (its hidden group is
        # 32768 + id): raise them so all 32767 session ids p4tap can allocate fit
        # (unless a test wants a small engine: `replication_groups`).
        if "--max-mc-groups" in helptext:
            groups = 65536 if self.replication_groups is None else self.replication_groups
            cmd += ["--max-mc-groups", str(groups), "--max-l1-entries", "65536", "--max-l2-entries", "131072"]
        cmd += list(self.extra_target_args)
        return cmd
