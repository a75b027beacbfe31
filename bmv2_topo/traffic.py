"""The demo's traffic: the subject's ping, a VoIP-like RTP flow and a TCP
transfer to the peer, and the other subscriber's ping and UDP, each a small
Python program run in its host. A step is skipped once a switch has died
(`stop` is set), and nothing waits for longer than a minute.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from bmv2_topo.layouts import OTHER, PEER, Layout

RTP_PORT, TCP_PORT = 5004, 8080
RTP_PACKETS, TCP_BYTES = 100, 200_000

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(20); n = 0
try:
    while True:
        b = c.recv(65536)
        if not b: break
        n += len(b)
finally:
    print(n, flush=True)
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], %d), timeout=10)
c.sendall(bytes(%d)); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
"""
UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1]))); s.settimeout(60)
try:
    while True: s.recv(2048)
except socket.timeout:
    pass
"""
RTP_SOURCE = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in range(int(sys.argv[2])):   # 20 ms G.711 frames: RTP header + 160 bytes
    s.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x5eed) + bytes(160), (sys.argv[1], %d))
    time.sleep(0.02)
""" % RTP_PORT


def drive_traffic(hosts: dict, layout: Layout, stop: threading.Event, progress, stack: ExitStack) -> int | None:
    """The subject's and the other subscriber's traffic; returns the bytes the
    peer's TCP server got (None if it could not finish). `stack` ends the
    peer's servers."""
    peer, subject, other = hosts["peer"], hosts["subject"], hosts["other"]
    py = sys.executable
    sink = peer.popen(py, "-c", UDP_SINK, str(RTP_PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(_kill, sink)
    server = peer.popen(py, "-c", TCP_SERVER % TCP_PORT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stack.callback(_kill, server)
    time.sleep(0.5)
    steps = [
        (f"subject: ping the peer ({PEER})", subject, ["ping", "-c", "3", "-i", "0.2", "-W", "1", PEER]),
        (f"subject: RTP-like flow, {RTP_PACKETS} packets of 172 bytes every 20 ms, to {layout.rtp_to}:{RTP_PORT}",
         subject, [py, "-c", RTP_SOURCE, layout.rtp_to, str(RTP_PACKETS)]),
        (f"subject: TCP transfer of {TCP_BYTES // 1000} kB to {layout.tcp_to}:{TCP_PORT}", subject,
         [py, "-c", TCP_CLIENT % (TCP_PORT, TCP_BYTES), layout.tcp_to]),
        (f"other subscriber ({OTHER}): ping and 20 UDP datagrams to the peer (must not be captured)", other,
         ["ping", "-c", "3", "-i", "0.2", "-W", "1", PEER], [py, "-c", RTP_SOURCE, PEER, "20"]),
    ]
    for what, host, *commands in steps:
        if stop.is_set():
            progress(f"skipped: {what}", mark="   ")
            continue
        progress(what)
        for argv in commands:
            try:
                host.run(*argv, check=False, timeout=60)
            except subprocess.TimeoutExpired:
                progress(f"gave up after 60s: {' '.join(argv[:2])}", mark="!!")
    if stop.is_set():
        return None
    try:
        out = server.communicate(timeout=30)[0].strip()
    except subprocess.TimeoutExpired:
        return None
    return int(out) if out.isdigit() else None


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
