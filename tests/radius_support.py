"""RADIUS messages as a real NAS sends them: radclient (freeradius-utils)
sends each to a socket of ours on loopback and we keep the bytes."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

needs_radclient = pytest.mark.skipif(shutil.which("radclient") is None,
                                     reason="radclient not installed (Debian freeradius-utils; make setup installs it)")
SECRET = "s3cret"


def radclient_bytes(attributes: dict[str, str], kind: str = "acct") -> bytes:
    """The RADIUS message radclient sends for `attributes` (one try, no answer awaited)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        text = "".join(f"{k} = {v}\n" for k, v in attributes.items())
        proc = subprocess.Popen(["radclient", "-r", "1", "-t", "1", f"127.0.0.1:{sock.getsockname()[1]}", kind,
                                 SECRET], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            proc.stdin.write(text)
            proc.stdin.close()
            payload, _ = sock.recvfrom(4096)
        finally:
            proc.kill()
            proc.wait()
    return payload


def accounting(status: str, user: str, address: str | None = None, session: str = "s1", **more: str) -> dict:
    attrs = {"User-Name": user, "Acct-Status-Type": status, "Acct-Session-Id": session}
    if address:
        attrs["Framed-IP-Address"] = address
    attrs.update({k.replace("_", "-"): v for k, v in more.items()})
    return attrs
