"""Real frames on real interfaces, for tests and benchmarks: send on one veth
end, collect what arrives on others (AF_PACKET, no IP stack involved)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable

from mediation.receiver import enable_kernel_timestamps, recv_stamped

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


SOL_PACKET = 263  # linux/socket.h
SO_RCVBUFFORCE = 33  # asm-generic/socket.h: root may exceed rmem_max
PACKET_STATISTICS = 6  # linux/if_packet.h: struct tpacket_stats {tp_packets, tp_drops}


class Recorder:
    """Every frame on a set of interfaces, both directions, with its time,
    recorded by a thread from the moment the object exists until stop().

    The ground truth of an end-to-end run: AF_PACKET sockets with large
    buffers, opened before any traffic starts, and the kernel's own count of
    frames it had to drop for them (`kernel_drops`), so that a report can
    tell "the tap missed packets" from "the reference capture missed them".
    Frames the switch transmits on an interface are `outgoing`, frames the
    host beyond it sent are not.
    """

    def __init__(self, interfaces: Iterable[str], buffer_bytes: int = 32 * 1024 * 1024) -> None:
        self.frames: list[tuple[float, str, bool, bytes]] = []  # (time, interface, outgoing, frame)
        self.socks: dict[str, socket.socket] = {}
        for name in interfaces:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            enable_kernel_timestamps(s)  # the kernel's arrival time, not the thread's
            s.bind((name, 0))
            s.setblocking(False)
            self.socks[name] = s
        self.kernel_drops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wire-recorder", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        by_fd = {s.fileno(): name for name, s in self.socks.items()}
        socks = list(self.socks.values())
        while not self._stop.is_set():
            ready, _, _ = select.select(socks, [], [], 0.1)
            for s in ready:
                self._drain(s, by_fd[s.fileno()])
        for s in socks:
            self._drain(s, by_fd[s.fileno()])

    def _drain(self, s: socket.socket, name: str) -> None:
        while True:
            try:
                data, addr, stamp = recv_stamped(s)
            except BlockingIOError:
                return
            self.frames.append((stamp, name, addr[2] == socket.PACKET_OUTGOING, data))

    def stop(self) -> list[tuple[float, str, bool, bytes]]:
        self._stop.set()
        self._thread.join()
        for s in self.socks.values():
            stats = s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            self.kernel_drops += int.from_bytes(stats[4:8], "little")
            s.close()
        return self.frames

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.stop()
