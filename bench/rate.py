"""Forwarding rate of a switch between two interfaces.

Closed loop over raw AF_PACKET sockets (see `measure`): nothing here touches
an IP stack or leaves the veth pair.
"""

from __future__ import annotations

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
        return self.received / self.seconds if self.seconds > 0 else 0.0


def measure(tx_interface: str, rx_interface: str, frames: list[bytes], count: int, window: int = 32,
            idle_timeout: float = 0.5) -> RateSample:
    """Closed loop: keep `window` frames in flight, send one more for each
    that comes out, until `count` have come out (or nothing arrives for
    `idle_timeout`). Open-loop blasting overflows bmv2's input queue and
    measures the drops more than the pipeline; a window keeps the switch busy
    without overloading it. Returns frames out over the time they took."""
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((tx_interface, 0))
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
    rx.bind((rx_interface, 0))
    rx.settimeout(idle_timeout)
    wanted = set(frames)
    n = len(frames)
    sent = received = 0
    try:
        for _ in range(min(window, count)):
            tx.send(frames[sent % n])
            sent += 1
        start = time.perf_counter()
        while received < count:
            try:
                data, addr = rx.recvfrom(65535)
            except socket.timeout:
                if sent >= count + window:  # lost frames: give up on the rest
                    break
                for _ in range(window):  # refill what was lost
                    tx.send(frames[sent % n])
                    sent += 1
                continue
            if addr[2] == socket.PACKET_OUTGOING or data not in wanted:
                continue
            received += 1
            if sent < count:
                tx.send(frames[sent % n])
                sent += 1
        elapsed = time.perf_counter() - start
    finally:
        tx.close()
        rx.close()
    return RateSample(sent, received, elapsed)


def median_pps(samples: list[RateSample]) -> float:
    return statistics.median(s.pps for s in samples)
