"""Run bmv2 ``simple_switch_grpc`` as a child process for tests, benchmarks and the demo.

The switch starts empty (``--no-p4``); the controller pushes the pipeline over
P4Runtime, exactly as on a hardware switch.  Every listening socket is on
127.0.0.1 (or a unix socket), and each instance gets its own ports and
sockets, so several switches can run side by side.

This module is the process: starting it and waiting until it serves,
stopping, killing and restarting it, and its egress queues. What it is
started with (settings, command line, addresses, files) is
bmv2_topo.switch_settings; targets (bmv2, or p4tap's softswitch with the
same command line) are chosen by bmv2_topo.switch_targets; the checks the
launcher makes of the machine are bmv2_topo.switch_probes. Their names are
still importable from here.

Quirks of the running switch handled here:

* The gRPC server prints "Server listening" even when it failed to bind, so
  readiness is judged by actually connecting to the port.
* bmv2 starts happily with ``-i 1@ifname`` for an interface that does not
  exist (the port just never sees traffic), so interfaces are checked first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.switch_probes import (free_tcp_port, help_text, listening, log_tail, looks_like_bind_failure,
                                     missing_interfaces)
from bmv2_topo.switch_settings import LOG_LEVELS, P4TAP_CPU_PORT, SwitchSettings
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
    "LOG_LEVELS",
    "P4TAP_CPU_PORT",
    "SwitchSettings",
    "help_text",
]

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
class Bmv2Switch(SwitchSettings):
    """One ``simple_switch_grpc`` child process, started with what its
    settings (:class:`SwitchSettings`, every constructor argument) make."""

    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _out: object | None = field(default=None, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------ properties

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
