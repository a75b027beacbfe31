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
import subprocess
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
