"""What the switch launcher asks of the machine: free ports, the binary's
options, interfaces, whether a server listens, and the tail of a log.

bmv2 misleads a launcher that believes it: it starts with ``-i 1@ifname``
for an interface that does not exist (the port just never sees traffic), its
gRPC server prints "Server listening" even when it failed to bind, and its
options differ from build to build. So the launcher (bmv2_topo.bmv2_switch)
checks for itself, with these probes, each answering from the system alone;
kept apart so the launcher reads as the order of starting and stopping.
"""

from __future__ import annotations

import ctypes
import functools
import socket
import subprocess
import threading
from collections.abc import Collection
from pathlib import Path

__all__ = ["connect_in_netns", "free_tcp_port", "help_text", "listening", "log_tail", "looks_like_bind_failure",
           "missing_interfaces"]

_CLONE_NEWNET = 0x40000000


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@functools.lru_cache(maxsize=8)
def help_text(binary: str) -> str:
    """``simple_switch_grpc --help`` output, to learn which options this build has."""
    try:
        out = subprocess.run(
            [binary, "--help"], capture_output=True, text=True, timeout=20, check=False
        )
        return out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return ""


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last lines of a log (its last 16 KiB at most), for an error message."""
    if path is None:
        return ""
    try:
        data = path.read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def looks_like_bind_failure(text: str) -> bool:
    t = text.lower()
    return "address already in use" in t or "failed to add" in t or "bind" in t and "fail" in t


def connect_in_netns(netns: str, host: str, port: int, timeout: float) -> bool:
    """TCP-connect to host:port from inside network namespace ``netns``.

    Done on a throwaway thread that switches its own network namespace
    (setns is per thread), so the rest of the process is unaffected.
    """
    result = [False]

    def probe() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{netns}", "rb") as f:
            if libc.setns(f.fileno(), _CLONE_NEWNET) != 0:
                return
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)
    return result[0]


def listening(unix_path: Path | None, netns: str | None, port: int | None) -> bool:
    """Whether a server accepts connections on ``unix_path`` if given, else on
    127.0.0.1:``port`` (inside ``netns`` if given)."""
    if unix_path is not None:
        if not unix_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect(str(unix_path))
                return True
            except OSError:
                return False
    if netns:
        return connect_in_netns(netns, "127.0.0.1", port, 0.5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def missing_interfaces(ifaces: Collection[str], netns: str | None) -> list[str]:
    """Which of these interfaces do not exist (inside ``netns`` if given)."""
    if netns:
        script = " && ".join(f"test -e /sys/class/net/{iface}" for iface in ifaces)
        r = subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", script], capture_output=True, timeout=30)
        return [] if r.returncode == 0 else [
            iface for iface in ifaces
            if subprocess.run(["ip", "netns", "exec", netns, "test", "-e", f"/sys/class/net/{iface}"],
                              capture_output=True, timeout=30).returncode != 0
        ]
    return [iface for iface in ifaces if not Path(f"/sys/class/net/{iface}").exists()]
