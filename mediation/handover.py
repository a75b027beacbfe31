"""Handover of content to law-enforcement agencies (HI3, RFC 3924's
interface beyond the MD): one intercept may be delivered to several
agencies, and each agency gets only the CCCIDs it is authorised for.

Per agency one delivery:

- `file`: a directory of its own with one capture file per CCCID
  (mediation/capture.py: pcap, LINKTYPE_RAW);
- `udp`: each packet forwarded as a datagram in the same `pcli` format it
  arrived in (4-octet CCCID + the IP packet);
- `hi3` (and `hi2`): ETSI TS 102 232 PS-PDUs over TCP with keep-alives, through
  a durable spool (mediation/etsi_delivery.py): what an agency accepts;
- `tcp`: one connection, each packet a record: a 4-octet big-endian length,
  then the `pcli` bytes. The MD reconnects (at most once a second) when the
  agency's collector goes away; what could not be handed over meanwhile is
  counted as `failed`, never silently lost.

    handover = Handover([Agency("lea-a", frozenset({42}), FileDelivery(Path("out/lea-a"))),
                         Agency("lea-b", frozenset({42, 43}), UdpDelivery("127.0.0.1", 9000))])
    handover.dispatch(time.time(), 42, ip_packet)

IRI (HI2, mediation/iri.py) goes the same ways to the agencies holding the
record's CCCID (`dispatch_iri`): a file `iri-N.jsonl` beside the captures,
or the CCCID and the JSON record as a datagram or a TCP record.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from mediation.capture import RawPcapWriter, capture_name
from mediation.iri import IriRecord
from mediation.pcli import encode

log = logging.getLogger("p4tap.md")
RECORD_LENGTH = struct.Struct("!I")


class Delivery(Protocol):
    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        """Hand one packet over; False if it could not be."""

    def deliver_iri(self, record: IriRecord) -> bool:
        """Hand one IRI record over; False if it could not be."""

    def describe(self) -> str: ...

    def close(self) -> None: ...


def iri_name(cccid: int) -> str:
    return f"iri-{cccid}.jsonl"


def iri_datagram(record: IriRecord) -> bytes:
    """The CCCID, then the JSON record: framed as `pcli` content is (mediation/iri.py)."""
    return record.cccid.to_bytes(4, "big") + record.to_json()


class FileDelivery:
    """One pcap per CCCID in a directory of the agency's own."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.writers: dict[int, RawPcapWriter] = {}
        self.failing = False

    def path(self, cccid: int) -> Path:
        return self.directory / capture_name(cccid)

    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        try:
            writer = self.writers.get(cccid)
            if writer is None:
                writer = self.writers[cccid] = RawPcapWriter(self.path(cccid))
            writer.write(stamp, packet)
        except OSError as error:  # a full or read-only disk: counted as failed, the other agencies go on
            if not self.failing:
                log.error("handover to %s: %s", self.describe(), error)
            self.failing = True
            return False
        self.failing = False
        return True

    def deliver_iri(self, record: IriRecord) -> bool:
        # A full or read-only disk costs this record (counted by the caller), never the writer thread.
        try:
            with open(self.directory / iri_name(record.cccid), "ab", opener=_private_opener) as f:
                f.write(record.to_json() + b"\n")
        except OSError as error:
            log.error("IRI for CCCID %d not written to %s: %s", record.cccid, self.directory, error)
            return False
        return True

    def flush(self) -> None:
        for writer in self.writers.values():
            try:
                writer.flush()
            except OSError as error:  # the records it lost were counted delivered: say so
                log.error("handover to %s: %d packets not written: %s", self.describe(),
                          getattr(error, "lost", 0), error)

    def describe(self) -> str:
        return f"files in {self.directory}"

    def close(self) -> None:
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError as error:
                log.error("handover to %s: closing: %s", self.describe(), error)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class UdpDelivery:
    """Each packet as a `pcli` datagram to the agency's collector."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)

    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        return self._send(encode(cccid, packet))

    def deliver_iri(self, record: IriRecord) -> bool:
        return self._send(iri_datagram(record))

    def _send(self, datagram: bytes) -> bool:
        try:
            self.sock.sendto(datagram, self.address)
            return True
        except OSError:  # e.g. the collector's port answered ICMP unreachable
            return False

    def flush(self) -> None:
        pass

    def describe(self) -> str:
        return f"UDP to {self.address[0]}:{self.address[1]}"

    def close(self) -> None:
        self.sock.close()


class TcpDelivery:
    """Length-prefixed `pcli` records on one TCP connection, reconnecting."""

    def __init__(self, host: str, port: int, timeout: float = 2.0, retry_every: float = 1.0) -> None:
        self.address = (host, port)
        self.timeout, self.retry_every = timeout, retry_every
        self.sock: socket.socket | None = None
        self._next_try = 0.0
        self.connects = 0

    def _connection(self) -> socket.socket | None:
        if self.sock is not None:
            return self.sock
        now = time.monotonic()
        if now < self._next_try:
            return None
        self._next_try = now + self.retry_every
        try:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connects += 1
            log.info("handover: connected to %s", self.describe())
        except OSError as error:
            log.warning("handover: cannot reach %s: %s", self.describe(), error)
            self.sock = None
        return self.sock

    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        return self._send(encode(cccid, packet))

    def deliver_iri(self, record: IriRecord) -> bool:
        return self._send(iri_datagram(record))

    def _send(self, record: bytes) -> bool:
        sock = self._connection()
        if sock is None:
            return False
        try:
            sock.sendall(RECORD_LENGTH.pack(len(record)) + record)
            return True
        except OSError as error:
            log.warning("handover: connection to %s lost: %s", self.describe(), error)
            sock.close()
            self.sock = None
            return False

    def flush(self) -> None:
        pass

    def describe(self) -> str:
        return f"TCP to {self.address[0]}:{self.address[1]}"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def read_records(stream: bytes) -> list[tuple[int, bytes]]:
    """(CCCID, IP packet) of every complete record in what a TcpDelivery sent."""
    out, offset = [], 0
    while offset + RECORD_LENGTH.size <= len(stream):
        (length,) = RECORD_LENGTH.unpack_from(stream, offset)
        if offset + RECORD_LENGTH.size + length > len(stream):
            break
        record = stream[offset + RECORD_LENGTH.size: offset + RECORD_LENGTH.size + length]
        out.append((int.from_bytes(record[:4], "big"), record[4:]))
        offset += RECORD_LENGTH.size + length
    return out


@dataclass
class AgencyCounts:
    packets: int = 0
    bytes: int = 0
    failed: int = 0
    iri: int = 0  # IRI records handed over
    iri_failed: int = 0


@dataclass
class Agency:
    name: str
    cccids: frozenset[int]
    delivery: Delivery
    counts: dict[int, AgencyCounts] = field(default_factory=dict)


class Handover:
    """Dispatches each received packet to every agency authorised for its CCCID."""

    def __init__(self, agencies: list[Agency]) -> None:
        names = [a.name for a in agencies]
        if len(set(names)) != len(names):
            raise ValueError(f"agency names must be unique, got {names}")
        self.agencies = agencies
        self.by_cccid: dict[int, list[Agency]] = {}
        for agency in agencies:
            for cccid in agency.cccids:
                self.by_cccid.setdefault(cccid, []).append(agency)
        self.unclaimed = 0

    def dispatch(self, stamp: float, cccid: int, packet: bytes) -> None:
        agencies = self.by_cccid.get(cccid)
        if not agencies:
            self.unclaimed += 1
            if self.unclaimed == 1:
                log.warning("handover: CCCID %d is not authorised for any agency; kept by the MD only", cccid)
            return
        for agency in agencies:
            counts = agency.counts.setdefault(cccid, AgencyCounts())
            if agency.delivery.deliver(stamp, cccid, packet):
                counts.packets += 1
                counts.bytes += len(packet)
            else:
                counts.failed += 1

    def dispatch_iri(self, record: IriRecord) -> int:
        """The record to every agency holding its CCCID, and no other; how many got it."""
        delivered = 0
        for agency in self.by_cccid.get(record.cccid, []):
            counts = agency.counts.setdefault(record.cccid, AgencyCounts())
            if agency.delivery.deliver_iri(record):
                counts.iri += 1
                delivered += 1
            else:
                counts.iri_failed += 1
        return delivered

    def flush(self) -> None:
        for agency in self.agencies:
            agency.delivery.flush()

    def close(self) -> None:
        for agency in self.agencies:
            agency.delivery.close()

    def summary(self) -> list[dict]:
        out = []
        for a in self.agencies:
            row = {"name": a.name, "delivery": a.delivery.describe(), "cccids": sorted(a.cccids),
                   "counts": {str(c): asdict(n) for c, n in sorted(a.counts.items())}}
            status = getattr(a.delivery, "status", None)
            if status is not None:   # an ETSI handover: its connections and spools
                row["etsi"] = status()
            out.append(row)
        return out
