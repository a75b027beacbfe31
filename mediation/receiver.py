"""The mediation device's content receiver (RFC 3924 interface f).

Listens on UDP, decodes `pcli`, demultiplexes by CCCID and writes one capture
file per intercept (pcap, LINKTYPE_RAW: the intercepted IP packets with their
arrival times), counting packets and bytes per CCCID. The socket reader never
waits for the disk: packets go through a bounded queue to a writer thread, and
what does not fit is counted as dropped and warned about, never lost silently.

    python -m mediation.receiver --listen 203.0.113.10 --port 7000 --out-dir captures/
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scapy.utils import PcapWriter

from mediation.pcli import PcliError, decode

log = logging.getLogger("p4tap.md")
DLT_RAW = 101


@dataclass
class InterceptStats:
    cccid: int
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    capture: str = ""


class ContentReceiver:
    def __init__(self, listen: str, port: int, out_dir: Path, queue_size: int = 65536) -> None:
        family = socket.AF_INET6 if ":" in listen else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind((listen, port))
        self.sock.settimeout(0.2)
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.queue: queue.Queue[tuple[float, int, bytes] | None] = queue.Queue(maxsize=queue_size)
        self.stats: dict[int, InterceptStats] = {}
        self.malformed = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._writers: dict[int, PcapWriter] = {}
        self._writer_thread = threading.Thread(target=self._write_loop, name="pcap-writer", daemon=True)

    def _write_loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            stamp, cccid, packet = item
            writer = self._writers.get(cccid)
            if writer is None:
                path = self.out_dir / f"cccid-{cccid}.pcap"
                writer = self._writers[cccid] = PcapWriter(str(path), linktype=DLT_RAW, sync=False)
                writer.write_header(None)  # write_packet, unlike write, does not write the file header
                self.stats[cccid].capture = str(path)
            writer.write_packet(packet, sec=int(stamp), usec=int((stamp % 1) * 1_000_000))
        for writer in self._writers.values():
            writer.close()

    def run(self, duration: float | None = None) -> None:
        self._writer_thread.start()
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                payload = self.sock.recv(65535)
            except socket.timeout:
                continue
            stamp = time.time()
            try:
                content = decode(payload)
            except PcliError as error:
                self.malformed += 1
                log.warning("malformed content packet: %s", error)
                continue
            stats = self.stats.setdefault(content.cccid, InterceptStats(content.cccid))
            stats.packets += 1
            stats.bytes += len(content.ip_packet)
            stats.first = stats.first or stamp
            stats.last = stamp
            try:
                self.queue.put_nowait((stamp, content.cccid, content.ip_packet))
            except queue.Full:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("capture writer is behind: %d packets not written", self.dropped)
        self.queue.put(None)
        self._writer_thread.join()
        self.sock.close()

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict:
        return {"intercepts": [asdict(s) for s in sorted(self.stats.values(), key=lambda s: s.cccid)],
                "malformed": self.malformed, "not_written": self.dropped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address to listen on (IPv4 or IPv6)")
    parser.add_argument("--port", type=int, required=True, help="UDP port (the mediation row's DestPort)")
    parser.add_argument("--out-dir", type=Path, default=Path("captures"), help="where cccid-N.pcap files go")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    parser.add_argument("--summary-json", type=Path, help="write the per-CCCID counts here on exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s md %(levelname)s %(message)s")
    receiver = ContentReceiver(args.listen, args.port, args.out_dir)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: receiver.stop())
    log.info("listening on %s port %d, captures in %s", args.listen, args.port, args.out_dir)
    receiver.run(args.duration)
    summary = receiver.summary()
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2))
    for s in summary["intercepts"]:
        log.info("CCCID %d: %d packets, %d bytes -> %s", s["cccid"], s["packets"], s["bytes"], s["capture"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
