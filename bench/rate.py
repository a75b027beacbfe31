"""Forwarding rate of a switch between two interfaces.

A sender process blasts pre-built frames into one interface as fast as it
can; the caller's process counts what comes out of the other and times the
first to the last frame out. With the input overloaded, that is the rate
the switch sustains. Raw AF_PACKET sockets, so nothing here touches an IP
stack or leaves the veth pair.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import time
from dataclasses import dataclass

ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class RateSample:
    sent: int
    received: int
    seconds: float

    @property
    def pps(self) -> float:
        return (self.received - 1) / self.seconds if self.received > 1 and self.seconds > 0 else 0.0


def _blast(interface: str, frames: list[bytes], count: int, start: multiprocessing.Event) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((interface, 0))
    start.wait()
    n = len(frames)
    for i in range(count):
        while True:
            try:
                sock.send(frames[i % n])
                break
            except BlockingIOError:  # pragma: no cover - transmit queue full
                time.sleep(0.0001)
            except OSError:
                time.sleep(0.0001)
    sock.close()


def measure(tx_interface: str, rx_interface: str, frames: list[bytes], count: int, idle_timeout: float = 2.0) -> RateSample:
    """Send `count` frames (cycling through `frames`) and time what arrives."""
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024 * 1024)
    rx.bind((rx_interface, 0))
    rx.settimeout(idle_timeout)
    wanted = set(frames)
    start = multiprocessing.Event()
    sender = multiprocessing.Process(target=_blast, args=(tx_interface, frames, count, start), daemon=True)
    sender.start()
    start.set()
    received, first, last = 0, 0.0, 0.0
    try:
        while received < count:
            try:
                data, addr = rx.recvfrom(65535)
            except socket.timeout:
                break
            if addr[2] == socket.PACKET_OUTGOING or data not in wanted:
                continue
            now = time.perf_counter()
            if received == 0:
                first = now
            last = now
            received += 1
    finally:
        sender.join(timeout=30)
        if sender.is_alive():
            sender.kill()
        rx.close()
    return RateSample(count, received, last - first)


def median_pps(samples: list[RateSample]) -> float:
    return statistics.median(s.pps for s in samples)
