"""Real frames on real interfaces, for tests and benchmarks: send on one veth
end, collect what arrives on others (AF_PACKET, no IP stack involved)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable

ETH_P_ALL = 0x0003


class Wire:
    """Raw sockets on a set of interfaces. Frames the host itself sent are ignored."""

    def __init__(self, interfaces: Iterable[str]) -> None:
        self.socks: dict[str, socket.socket] = {}
        for name in interfaces:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
            s.bind((name, 0))
            self.socks[name] = s

    def send(self, interface: str, frame: bytes) -> None:
        self.socks[interface].send(frame)

    def drain(self) -> None:
        self.collect(0.05)

    def collect(self, seconds: float) -> dict[str, list[bytes]]:
        """Every frame received on each interface within `seconds`."""
        out: dict[str, list[bytes]] = {name: [] for name in self.socks}
        by_fd = {s.fileno(): name for name, s in self.socks.items()}
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self.socks.values()), [], [], left)
            for s in ready:
                data, addr = s.recvfrom(65535)
                if addr[2] != socket.PACKET_OUTGOING:
                    out[by_fd[s.fileno()]].append(data)
        return out

    def close(self) -> None:
        for s in self.socks.values():
            s.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
