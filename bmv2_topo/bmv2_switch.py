"""Run bmv2 ``simple_switch_grpc`` as a child process for tests, benchmarks and the demo.

The switch starts empty (``--no-p4``); the controller pushes the pipeline over
P4Runtime, exactly as on a hardware switch.  Every listening socket is on
127.0.0.1 (or a unix socket), and each instance gets its own gRPC port,
Thrift port (when the build has Thrift) and nanomsg notification socket, so
several switches can run side by side without colliding on bmv2's fixed
defaults (9559, 9090, ``ipc:///tmp/bmv2-<device-id>-notifications.ipc``).

Quirks handled here:

* ``--log-file X`` makes bmv2 (its bundled spdlog) write ``X.txt``; a
  :attr:`Bmv2Switch.log_file` ending in ``.txt`` is used as is, any other
  name gets ``.txt`` appended; :attr:`Bmv2Switch.log_path` is the real file.
* ``--grpc-server-addr``, ``--cpu-port`` and ``--priority-queues`` are
  *target* options and must come after ``--``.
* ``--thrift-port`` / ``--notifications-addr`` only exist when bmv2 was built
  with Thrift / nanomsg; the launcher reads ``--help`` once and only passes
  what the binary understands.
* The gRPC server prints "Server listening" even when it failed to bind, so
  readiness is judged by actually connecting to the port.
* bmv2 starts happily with ``-i 1@ifname`` for an interface that does not
  exist (the port just never sees traffic), so interfaces are checked first.

Targets (bmv2, or p4tap's softswitch with the same command line) are chosen
by bmv2_topo.switch_targets; the checks the launcher makes of the machine
are bmv2_topo.switch_probes. Their names are still importable from here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.switch_probes import (free_tcp_port, help_text, listening, log_tail, looks_like_bind_failure,
                                     missing_interfaces)
from bmv2_topo.switch_targets import (SIMPLE_SWITCH_GRPC, SKIP_REASON, TARGET_ENV, TARGETS, Bmv2Error,
                                      find_simple_switch_grpc, resolve_target, skip_reason, target_skip_reason)

__all__ = [
    "Bmv2Switch",
    "Bmv2Error",
    "SIMPLE_SWITCH_GRPC",
    "SKIP_REASON",
    "find_simple_switch_grpc",
    "skip_reason",
    "free_tcp_port",
    "TARGETS",
    "TARGET_ENV",
    "resolve_target",
    "target_skip_reason",
]

# p4tap's CPU port (p4src/v1model/arch.p4): the controller's clock probes
# come in and go back by it, so every switch is started with it.
P4TAP_CPU_PORT = 510

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")

_REPO_ROOT = Path(__file__).resolve().parent.parent


_running: "weakref.WeakSet[Bmv2Switch]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Never leave a switch running when the Python process exits."""
    for sw in list(_running):
        try:
            sw.stop(grace=1.0)
        except Exception:
            pass


@dataclass(eq=False)
class Bmv2Switch:
    """One ``simple_switch_grpc`` child process.

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

    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _out: object | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _auto_grpc_port: bool = field(default=False, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------ properties

    @property
    def grpc_address(self) -> str:
        """Target string for :class:`controller.switch.SwitchConnection`."""
        if self._use_unix():
            return f"unix:{self._unix_socket_path()}"
        if self.grpc_port is None:
            raise Bmv2Error(f"{self.name}: gRPC port not chosen yet (call start())")
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called (and until the next start): the
        process ended because its owner asked, not because it died."""
        return self._stopped

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the current process exits; its exit code (negative: the
        signal), or None on timeout or when nothing was started. A keeper
        thread sits here instead of polling :attr:`alive`."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

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

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 15.0) -> "Bmv2Switch":
        """Spawn the switch and wait until its gRPC server accepts connections.

        Raises :class:`Bmv2Error` with the tail of the switch's output and log
        if it exits or does not listen within ``timeout`` seconds.
        """
        if self.alive:
            raise Bmv2Error(f"{self.name} is already running (pid {self.pid})")
        self._stopped = False
        if self.netns and not Path(f"/run/netns/{self.netns}").exists():
            raise Bmv2Error(f"{self.name}: network namespace {self.netns!r} does not exist")
        self._check_interfaces()
        if self.netns and not self._use_unix():
            # a fresh namespace has lo down, and bmv2 binds 127.0.0.1 there
            subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"],
                           capture_output=True, timeout=30)
        attempts = 3
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
                return self
            except Bmv2Error as e:
                # An auto-picked port may have been taken between our probe and
                # bmv2's bind; try another one.
                if (
                    self._auto_grpc_port
                    and attempt + 1 < attempts
                    and getattr(e, "died", False)
                    and looks_like_bind_failure(log_tail(self.stdout_path, 10))
                ):
                    self.grpc_port = None
                    self.thrift_port = None
                    continue
                if self._own_workdir and self.workdir is not None:
                    # the exception already carries the output and log tails
                    shutil.rmtree(self.workdir, ignore_errors=True)
                    self.workdir = None
                    self._own_workdir = False
                raise
        raise AssertionError("unreachable")

    def _check_interfaces(self) -> None:
        """bmv2 silently runs with a port whose interface does not exist; fail early instead."""
        if not self.ports:
            return
        missing = missing_interfaces(list(self.ports.values()), self.netns)
        if missing:
            where = f" in network namespace {self.netns!r}" if self.netns else ""
            raise Bmv2Error(f"bmv2 switch {self.name!r}: interface(s) {', '.join(missing)} do not exist{where}")

    def _start_once(self, timeout: float) -> None:
        cmd = self.command()
        if self._use_unix():
            try:
                self._unix_socket_path().unlink()
            except FileNotFoundError:
                pass
        out_path = self.stdout_path
        self._out = open(out_path, "ab")
        self._out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        self._out.flush()
        try:
            env = None
            if self.target == "softswitch":
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
            self._proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is not the switch's
            )
        except OSError as e:
            self._close_out()
            raise Bmv2Error(f"{self.name}: cannot run {cmd[0]}: {e}") from e
        _running.add(self)

        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._reap()
                err = Bmv2Error(self._failure_message(f"exited with status {rc} during startup"))
                err.died = True  # type: ignore[attr-defined]
                raise err
            if self._ready():
                # The server may come up and then abort (e.g. bad interface); a
                # short grace catches the common startup failures.
                time.sleep(0.05)
                if self._proc.poll() is None:
                    return
                continue
            if time.monotonic() > deadline:
                self._terminate(grace=2.0)
                raise Bmv2Error(
                    self._failure_message(f"did not accept gRPC connections on {self.grpc_address} within {timeout:g}s")
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        return listening(self._unix_socket_path() if self._use_unix() else None, self.netns, self.grpc_port)

    def _failure_message(self, what: str) -> str:
        parts = [f"bmv2 switch {self.name!r} {what}.", "command: " + " ".join(self._proc.args if self._proc else [])]
        out = log_tail(self.stdout_path)
        if out:
            parts.append(f"--- tail of {self.stdout_path} ---\n{out}")
        log = log_tail(self.log_path)
        if log:
            parts.append(f"--- tail of {self.log_path} ---\n{log}")
        return "\n".join(parts)

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _running.discard(self)
        self._close_out()

    def _close_out(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        self._reap()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped. Idempotent.

        A temp workdir created by :meth:`start` is removed; one you passed is kept.
        """
        self._stopped = True
        self._terminate(grace)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def kill(self) -> None:
        """SIGKILL without grace, like a crash (logs are kept for :meth:`restart`)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
        self._reap()

    # ------------------------------------------------------------ egress queues (Thrift)

    def set_queue_rate(self, pps: int, port: int | None = None, priority: int | None = None) -> None:
        """``simple_switch_CLI set_queue_rate``: limit egress queue(s) to ``pps``
        packets/s (0: no limit); all ports, one port, or one priority queue of it."""
        with self._thrift() as client:
            client.set_queue_rate(pps, port, priority)

    def set_queue_depth(self, depth: int, port: int | None = None, priority: int | None = None) -> None:
        """``simple_switch_CLI set_queue_depth``: hold at most ``depth`` packets per egress queue."""
        with self._thrift() as client:
            client.set_queue_depth(depth, port, priority)

    def _thrift(self):
        from softswitch.thrift import ThriftClient
        if not self.alive:
            raise Bmv2Error(f"{self.name} is not running")
        if self.thrift_port is None:
            raise Bmv2Error(f"{self.name}: this build has no Thrift server (--thrift-port): queues cannot be set")
        if self.netns:
            raise Bmv2Error(f"{self.name}: its Thrift server is inside network namespace {self.netns!r}")
        deadline = time.monotonic() + 10
        while True:
            try:
                return ThriftClient("127.0.0.1", self.thrift_port)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise Bmv2Error(f"{self.name}: cannot reach its Thrift server on port {self.thrift_port}: {e}") from e
                time.sleep(0.1)

    def restart(self, timeout: float = 15.0) -> "Bmv2Switch":
        """Stop (if running) and start again on the same ports and the same
        P4Runtime address (a controller keeps dialling it); the switch comes
        back empty. A failed restart keeps the address and the workdir too,
        so that it can be tried again."""
        self._terminate(grace=5.0)
        auto, own = self._auto_grpc_port, self._own_workdir
        self._auto_grpc_port = self._own_workdir = False  # no new port, no workdir (unix socket) removed
        try:
            return self.start(timeout=timeout)
        finally:
            self._auto_grpc_port, self._own_workdir = auto, own

    def __enter__(self) -> "Bmv2Switch":
        if not self.alive:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; stop() is the way
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(timeout=5)
        except Exception:
            pass
