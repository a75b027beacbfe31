"""The mediation device's content receiver (RFC 3924 interface f).

Listens on UDP (any number of IPv4 and IPv6 addresses), decodes `pcli`,
demultiplexes by CCCID and writes one capture file per intercept
(mediation/capture.py: pcap, LINKTYPE_RAW: the intercepted IP packets with
their arrival times, taken by the kernel), counting packets and bytes per
CCCID and per sending switch. Each packet is also handed over to the
agencies authorised for its CCCID (mediation/handover.py).

The socket reader never waits for the disk or an agency: packets go through
a bounded queue to a writer thread, and what does not fit is counted
(`not_written`) and warned about, never lost silently.

    python -m mediation.receiver --listen 203.0.113.10 --listen 2001:db8::10 --port 7000 --out-dir captures/

(`p4tap md listen` runs it with the rest of the MD: see mediation/cli.py.)
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mediation.capture import CaptureWriteError, RawPcapWriter, capture_name
from mediation.handover import FileDelivery, Handover
from mediation.iri import IriRecord
from mediation.pcli import PcliError, decode

log = logging.getLogger("p4tap.md")
SO_TIMESTAMPNS = 35  # asm-generic/socket.h; SCM_TIMESTAMPNS has the same value
TICK = 1.0  # seconds between status callbacks and capture-file flushes


def enable_kernel_timestamps(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def recv_stamped(sock: socket.socket, size: int = 65535) -> tuple[bytes, object, float]:
    """(data, sender, arrival time): the kernel's time of arrival when it
    gave one (see enable_kernel_timestamps), else now."""
    data, ancillary, _, sender = sock.recvmsg(size, 64)
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanos = struct.unpack("qq", value[:16])
            return data, sender, seconds + nanos / 1e9
    return data, sender, time.time()


@dataclass
class InterceptStats:
    cccid: int
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    capture: str = ""
    not_captured: int = 0  # received and handed over, but refused by the capture file's disk
    sources: dict[str, int] = field(default_factory=dict)  # sending switch address -> packets


RECEIVE_BUFFER = 8 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # asm-generic/socket.h


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """A receive buffer of `size`: copies arrive at the rate the subject sends
    (a TCP burst through several switches at once), and whatever overflows
    while this process is descheduled is lost before the MD ever counts it.
    SO_RCVBUF alone is capped at net.core.rmem_max (208 KiB by default);
    with CAP_NET_ADMIN (an MD run as root) the cap does not apply."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)  # up to rmem_max: raise it for bursts


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        set_receive_buffer(sock, RECEIVE_BUFFER)
        enable_kernel_timestamps(sock)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host} port {port}: {error.strerror}") from None
    return sock


class ContentReceiver:
    def __init__(self, listen: Sequence[tuple[str, int]], out_dir: Path, handover: Handover | None = None,
                 queue_size: int = 65536) -> None:
        if not listen:
            raise ValueError("the receiver needs at least one address to listen on")
        self.socks: list[socket.socket] = []
        try:
            for host, port in listen:
                self.socks.append(_bind(host, port))
        except OSError:
            self._close_sockets()
            raise
        self.addresses = [s.getsockname()[:2] for s in self.socks]
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.handover = handover
        # content, and the IRI function's records: one writer thread serves every delivery
        self.queue: queue.Queue[tuple[float, int, bytes | IriRecord] | None] = queue.Queue(maxsize=queue_size)
        self.iri = FileDelivery(self.out_dir)  # the MD keeps its targets' IRI beside their content
        self.iri_records = 0
        self.stats: dict[int, InterceptStats] = {}
        self.malformed = 0
        self.dropped = 0
        self.written = 0
        self.not_captured = 0
        self._failing: set[int] = set()  # CCCIDs whose capture file the disk refuses now
        self._stop = threading.Event()
        self._flush = threading.Event()
        self._writers: dict[int, RawPcapWriter] = {}
        self._writer_thread = threading.Thread(target=self._write_loop, name="capture-writer", daemon=True)

    def close(self) -> None:
        """Release the sockets of a receiver that will not run."""
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self.socks:
            sock.close()

    def _write_loop(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=TICK)
            except queue.Empty:
                item = ()
            if self._flush.is_set() or item == ():
                self._flush.clear()
                for cccid, writer in self._writers.items():
                    self._capture(cccid, writer.flush)
                if self.handover is not None:
                    self.handover.flush()
            if item is None:
                break
            if item == ():
                continue
            stamp, cccid, packet = item
            if isinstance(packet, IriRecord):
                self.iri.deliver_iri(packet)
                if self.handover is not None:
                    self.handover.dispatch_iri(packet)
                self.iri_records += 1
                continue
            self._capture(cccid, lambda: self._writer(cccid).write(stamp, packet), packets=1)
            if self.handover is not None:  # the agencies get it whatever the MD's disk says
                self.handover.dispatch(stamp, cccid, packet)
            self.written += 1
        for cccid, writer in self._writers.items():
            self._capture(cccid, writer.close)
        if self.handover is not None:
            self.handover.close()

    def _writer(self, cccid: int) -> RawPcapWriter:
        writer = self._writers.get(cccid)
        if writer is None:
            path = self.out_dir / capture_name(cccid)
            writer = self._writers[cccid] = RawPcapWriter(path)
            self.stats[cccid].capture = str(path)
        return writer

    def _capture(self, cccid: int, step: Callable[[], None], packets: int = 0) -> None:
        """One step of the capture file of `cccid`. A disk that refuses it (full,
        read-only) costs the capture those packets, counted per CCCID and said
        once when it starts and once when it ends, never the writer thread:
        the handover to the agencies goes on."""
        try:
            step()
        except OSError as error:
            lost = error.lost if isinstance(error, CaptureWriteError) else packets
            self.stats[cccid].not_captured += lost
            self.not_captured += lost
            if cccid not in self._failing:
                self._failing.add(cccid)
                log.error("CCCID %d: capture file not written (%s); packets still handed over, counted meanwhile",
                          cccid, error)
            return
        if cccid in self._failing and (packets == 0 or self._writers[cccid].pending == 0):
            self._failing.discard(cccid)
            log.warning("CCCID %d: capture file written again (%d packets were not)", cccid,
                        self.stats[cccid].not_captured)

    def run(self, duration: float | None = None, on_tick: Callable[[], None] | None = None) -> None:
        """Receive until stop() (or `duration` seconds); `on_tick` is called about once a second."""
        self._writer_thread.start()
        deadline = None if duration is None else time.monotonic() + duration
        next_tick = time.monotonic() + TICK
        try:
            while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                ready, _, _ = select.select(self.socks, [], [], 0.2)
                for sock in ready:
                    self._drain(sock)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK
                    self._flush.set()
                    if on_tick is not None:
                        on_tick()
            for sock in self.socks:  # what arrived before the stop
                self._drain(sock)
        finally:
            self.queue.put(None)
            self._writer_thread.join()
            self._close_sockets()

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                payload, sender, stamp = recv_stamped(sock)
            except BlockingIOError:
                return
            self.accept(payload, sender[0], stamp)

    def accept(self, payload: bytes, sender: str, stamp: float) -> None:
        """Count one received datagram and queue it for the writer."""
        try:
            content = decode(payload)
        except PcliError as error:
            self.malformed += 1
            if self.malformed == 1 or self.malformed % 1000 == 0:
                log.warning("malformed content packet from %s (%d so far): %s", sender, self.malformed, error)
            return
        stats = self.stats.get(content.cccid)
        if stats is None:
            stats = self.stats[content.cccid] = InterceptStats(content.cccid)
            log.info("first content of CCCID %d, from %s", content.cccid, sender)
        stats.packets += 1
        stats.bytes += len(content.ip_packet)
        stats.first = stats.first or stamp
        stats.last = stamp
        stats.sources[sender] = stats.sources.get(sender, 0) + 1
        try:
            self.queue.put_nowait((stamp, content.cccid, content.ip_packet))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("capture writer is behind: %d packets not written", self.dropped)

    def submit_iri(self, record: IriRecord) -> None:
        """From the IRI function's thread: a target's record, written and handed over in order with the content.
        It waits for room (an IRI record is not dropped for a busy disk), but not for ever."""
        try:
            self.queue.put((record.stamp, record.cccid, record), timeout=10)
        except queue.Full:
            self.dropped += 1
            log.warning("IRI record of CCCID %d not written: the writer is stuck", record.cccid)

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict:
        intercepts = [asdict(s) for s in sorted(self.stats.values(), key=lambda s: s.cccid)]
        out = {"intercepts": intercepts, "malformed": self.malformed, "not_written": self.dropped,
               "iri_records": self.iri_records, "not_captured": self.not_captured,
               "listening": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses]}
        if self.handover is not None:
            out["agencies"] = self.handover.summary()
            out["unclaimed"] = self.handover.unclaimed
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", action="append", required=True,
                        help="address to listen on, IPv4 or IPv6 (repeat for several)")
    parser.add_argument("--port", type=int, required=True, help="UDP port (the mediation row's DestPort)")
    parser.add_argument("--out-dir", type=Path, default=Path("captures"), help="where cccid-N.pcap files go")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    parser.add_argument("--summary-json", type=Path, help="write the per-CCCID counts here on exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s md %(levelname)s %(message)s")
    try:
        receiver = ContentReceiver([(a, args.port) for a in args.listen], args.out_dir)
    except OSError as error:
        print(f"mediation.receiver: {error.strerror}", file=sys.stderr)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: receiver.stop())
    log.info("listening on %s port %d, captures in %s", ", ".join(args.listen), args.port, args.out_dir)
    receiver.run(args.duration)
    summary = receiver.summary()
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2))
    for s in summary["intercepts"]:
        log.info("CCCID %d: %d packets, %d bytes -> %s", s["cccid"], s["packets"], s["bytes"], s["capture"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
