"""Packet I/O on Linux interfaces with AF_PACKET sockets, as bmv2 does with libpcap.

Like libpcap, a port only sees frames arriving on its interface (not the
ones it sends), and VLAN tags the kernel moved into packet metadata are put
back into the frame (``PACKET_AUXDATA``), so the P4 parser sees the frame as
it was on the wire.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

__all__ = ["Port", "PortSet"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUX = struct.Struct("IIIHHHH")
_CMSG_SPACE = socket.CMSG_SPACE(_AUX.size)
MAX_FRAME = 65536 + 64


class Port:
    def __init__(self, number: int, iface: str) -> None:
        self.number = number
        self.iface = iface
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            rx.bind((iface, ETH_P_ALL))
            rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernel < 4.20: filtered by packet type below
                pass
            try:
                rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except OSError:
                pass
            rx.setblocking(False)
        except OSError:
            rx.close()
            raise
        self.rx = rx
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            tx.bind((iface, 0))
            try:
                tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            except OSError:
                pass
        except OSError:
            tx.close()
            rx.close()
            raise
        self.tx = tx
        self.rx_count = 0
        self.tx_count = 0

    def fileno(self) -> int:
        return self.rx.fileno()

    def recv_burst(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` frames that are waiting (never blocks)."""
        out = []
        recvmsg = self.rx.recvmsg
        for _ in range(limit):
            try:
                data, anc, _flags, addr = recvmsg(MAX_FRAME, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno in (errno.ENETDOWN, errno.ENXIO):
                    break
                raise
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, typ, cdata in anc:
                if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= _AUX.size:
                    status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(cdata)
                    if tci or (status & TP_STATUS_VLAN_VALID):
                        if not (status & TP_STATUS_VLAN_TPID_VALID) or not tpid:
                            tpid = 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            out.append(data)
        self.rx_count += len(out)
        return out

    def send(self, data: bytes) -> None:
        try:
            self.tx.send(data)
            self.tx_count += 1
        except OSError:
            pass  # interface down / frame too big: bmv2 drops it too

    def close(self) -> None:
        for s in (self.rx, self.tx):
            try:
                s.close()
            except OSError:
                pass


class PortSet:
    """All interfaces of the switch, plus a wake-up pipe for injected packets."""

    def __init__(self) -> None:
        self.ports: dict[int, Port] = {}
        self._by_fd: dict[int, Port] = {}
        self._ep = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ep.register(self._wake_r, select.EPOLLIN)
        self._inject: list[tuple[int, bytes]] = []
        self._inject_lock = threading.Lock()
        self._stop = False

    def add(self, number: int, iface: str) -> Port:
        p = Port(number, iface)
        self.ports[number] = p
        self._by_fd[p.fileno()] = p
        self._ep.register(p.fileno(), select.EPOLLIN)
        return p

    def transmit(self, number: int, data: bytes) -> None:
        p = self.ports.get(number)
        if p is not None:
            p.send(data)

    def inject(self, number: int, data: bytes) -> None:
        """Queue a packet as if received on port ``number`` (packet-out); thread-safe."""
        with self._inject_lock:
            self._inject.append((number, data))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def stop(self) -> None:
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self, receive: Callable[[int, bytes], None],
            service: Callable[[], float | None] | None = None) -> None:
        """Receive loop: hands every frame to ``receive(port, frame)`` until stop().

        ``service()`` (the switch's) sends what rate-limited egress queues let
        go and returns the monotonic time of the next departure, or None; the
        loop wakes up then even when no frame arrives."""
        poll = self._ep.poll
        by_fd = self._by_fd
        wake: float | None = None
        while not self._stop:
            timeout = 1.0
            if wake is not None:
                timeout = min(timeout, max(0.0, wake - time.monotonic()))
            try:
                events = poll(timeout)
            except InterruptedError:
                continue
            for fd, _ev in events:
                if fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    with self._inject_lock:
                        batch, self._inject = self._inject, []
                    for number, data in batch:
                        receive(number, data)
                    continue
                port = by_fd.get(fd)
                if port is None:
                    continue
                num = port.number
                for frame in port.recv_burst():
                    receive(num, frame)
            if service is not None:
                wake = service()

    def close(self) -> None:
        for p in self.ports.values():
            p.close()
        try:
            self._ep.close()
        except OSError:
            pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
