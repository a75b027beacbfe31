"""The soak's traffic: mixed IPv4/IPv6 frames between the lab's hosts at a
steady rate, and a meter of what the switch forwards and copies.

Why its own module: the soak (bench/iap_soak.py) judges "forwarding stopped"
from what arrives on the wires, not from what the controller believes, so the
sender and the meter must be independent of the IAP and of each other (one
thread each, raw AF_PACKET sockets on the hosts' veth ends).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import ptf.testutils as tu

from ptf_tests.base import MD_A, OTHER, PEER, SUBJECT

ETH_P_ALL = 0x0003

# (sending host, frame) pairs: the subject's and the other subscriber's flows
# to the peer and back, UDP and TCP, over IPv4 and IPv6 (documentation addresses).
FLOWS = [
    (SUBJECT, lambda: tu.simple_udp_packet(eth_src=SUBJECT.mac, eth_dst=PEER.mac, ip_src=SUBJECT.ipv4,
                                           ip_dst=PEER.ipv4, udp_sport=40000, udp_dport=5004)),
    (SUBJECT, lambda: tu.simple_tcp_packet(eth_src=SUBJECT.mac, eth_dst=PEER.mac, ip_src=SUBJECT.ipv4,
                                           ip_dst=PEER.ipv4, tcp_sport=40001, tcp_dport=80)),
    (SUBJECT, lambda: tu.simple_udpv6_packet(eth_src=SUBJECT.mac, eth_dst=PEER.mac, ipv6_src=SUBJECT.ipv6,
                                             ipv6_dst=PEER.ipv6, udp_sport=40002, udp_dport=5060)),
    (PEER, lambda: tu.simple_udp_packet(eth_src=PEER.mac, eth_dst=SUBJECT.mac, ip_src=PEER.ipv4,
                                        ip_dst=SUBJECT.ipv4, udp_sport=5004, udp_dport=40000)),
    (PEER, lambda: tu.simple_tcpv6_packet(eth_src=PEER.mac, eth_dst=SUBJECT.mac, ipv6_src=PEER.ipv6,
                                          ipv6_dst=SUBJECT.ipv6, tcp_sport=80, tcp_dport=40003)),
    (OTHER, lambda: tu.simple_udp_packet(eth_src=OTHER.mac, eth_dst=PEER.mac, ip_src=OTHER.ipv4,
                                         ip_dst=PEER.ipv4, udp_sport=41000, udp_dport=5004)),
    (OTHER, lambda: tu.simple_udpv6_packet(eth_src=OTHER.mac, eth_dst=PEER.mac, ipv6_src=OTHER.ipv6,
                                           ipv6_dst=PEER.ipv6, udp_sport=41001, udp_dport=53)),
]


class Sender:
    """Sends FLOWS round robin at `pps` frames per second until stopped."""

    def __init__(self, ifaces: Mapping[int, str], pps: float) -> None:
        self.frames = [(ifaces[host.port], bytes(make())) for host, make in FLOWS]
        self.to_peer = [host is not PEER for host, _ in FLOWS]  # every flow but the peer's own goes to the peer
        self.sent_to_peer = 0
        self.socks = {name: _raw(name) for name in {iface for iface, _ in self.frames}}
        self.pps = pps
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval, due, i = 1.0 / self.pps, time.monotonic(), 0
        while not self._stop.is_set():
            iface, frame = self.frames[i % len(self.frames)]
            try:
                self.socks[iface].send(frame)
                self.sent += 1
                self.sent_to_peer += self.to_peer[i % len(self.frames)]
            except OSError:
                self.errors += 1
            i += 1
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:  # fell behind (a busy machine): do not burst to catch up
                due = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks.values():
            s.close()


@dataclass
class Seen:
    frames: int = 0
    last: float = 0.0  # time.monotonic() of the latest frame, 0 if none


class Meter:
    """Counts the frames the switch sends out of each watched port (what
    the host end receives), and when the latest arrived."""

    def __init__(self, ifaces: Mapping[int, str], ports: tuple[int, ...] = (PEER.port, SUBJECT.port, MD_A.port)) -> None:
        self.seen = {port: Seen() for port in ports}
        self.socks = {_raw(ifaces[port]): port for port in ports}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        socks = list(self.socks)
        while not self._stop.is_set():
            ready, _, _ = select.select(socks, [], [], 0.2)
            for s in ready:
                try:
                    _, addr = s.recvfrom(65535)
                except OSError:
                    continue
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                with self._lock:
                    seen = self.seen[self.socks[s]]
                    seen.frames += 1
                    seen.last = time.monotonic()

    def snapshot(self) -> dict[int, Seen]:
        with self._lock:
            return {port: Seen(s.frames, s.last) for port, s in self.seen.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()


def _raw(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    s.bind((iface, 0))
    return s
