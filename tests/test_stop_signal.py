"""The daemons stop on SIGTERM whichever of their threads the kernel hands
it to. A signal sent to a process goes to any thread that does not block
it; when that is one of gRPC's threads, a main thread blocked in an untimed
wait never ran the Python handler, and `p4tap controller run` once
outlived its test by ten minutes. Here the signal is aimed at a thread other
than the main one (tgkill), which is the case a plain `kill` only sometimes
makes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bmv2_topo.bmv2_switch import Bmv2Switch
from tests.conftest import SWITCH_SKIP_REASON, needs_switch
from tests.test_controller_deployment import controller_daemon, lab_config

SYS_TGKILL = 234  # x86-64


def _tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {sig})")


def _other_threads(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]


@needs_switch
def test_sigterm_to_a_grpc_thread_stops_the_controller(tmp_path: Path) -> None:
    assert SWITCH_SKIP_REASON is None
    switch = Bmv2Switch(ports={}, log_file=tmp_path / "switch.log")
    switch.start()
    try:
        with controller_daemon(lab_config(tmp_path, switch.grpc_address)) as daemon:
            others = _other_threads(daemon.pid)
            assert others, "the controller runs gRPC and timer threads beside its main thread"
            _tgkill(daemon.pid, others[-1], signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("SIGTERM delivered to a thread other than the main one was never acted on")
            assert daemon.returncode == 0
            assert "stopping" in (tmp_path / "controller.log").read_text()
    finally:
        switch.stop()


def test_sigterm_while_the_controller_starts_is_a_clean_stop(tmp_path: Path) -> None:
    """A SIGTERM during start-up (here: while the one configured switch does
    not answer) is a stop, not death by the default action: the handlers go in
    before anything is started. Sent once the log says the controller is
    connecting, which on the old order came before the handlers."""
    with socket.socket() as unused:  # a port nothing listens on: the switch is "down"
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    config = lab_config(tmp_path, address)
    log_path = tmp_path / "controller.log"
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "p4tap_cli", "controller", "run", "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while "connecting to" not in log_path.read_text() and time.time() < deadline:
            assert daemon.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.01)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        assert daemon.returncode == 0, log_path.read_text()[-3000:]
        assert "stopping" in log_path.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
