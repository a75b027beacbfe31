"""Handover to an agency in ETSI TS 102 232 over TCP (HI3 content, HI2 IRI),
as an agency's collector accepts it and as OpenLI's mediator delivers it: one
connection per agency and interface, PS-PDUs back to back, keep-alives.

Nothing is lost while the collector is away. Each PDU goes to a durable spool
(mediation/spool.py) before anything is sent, and leaves it only when the
agency has answered a keep-alive sent after it: TCP says only that the kernel
took the octets, the keep-alive response says the collector read them. After a
reconnect (or an MD restart) the connection sends again from the first record
not so acknowledged; the few records sent twice carry the same LIID, CIN and
sequence number, which is how the agency discards them (TS 102 232-1).

    delivery = EtsiDelivery(EtsiAgency(...))
    delivery.deliver(stamp, cccid, ip_packet)    # spooled; the connection thread sends it
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediation import etsi
from mediation.spool import Spool
from mediation.stream_filter import ip_fields

log = logging.getLogger("p4tap.md")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards the agency: its CA (to check its certificate), ours if it asks for one."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert:
            context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        return context


@dataclass(frozen=True)
class EtsiAgency:
    """Everything the ETSI handover to one agency needs (mediation/config.py builds it)."""

    name: str
    hi3: tuple[str, int]
    liids: dict[int, str]                     # CCCID -> the warrant's LIID as the agency knows it
    operator_id: str
    network_element_id: str
    spool_dir: Path
    hi2: tuple[str, int] | None = None
    interception_point_id: str | None = None
    country: str | None = None
    spool_max_bytes: int = 1 << 30
    overflow: str = "drop-newest"
    keepalive: float = 30.0                   # idle keep-alive interval (OpenLI's default is 300 s)
    keepalive_wait: float = 10.0              # no response within this: reconnect and resend
    tls: TlsSettings | None = None
    targets: dict[int, tuple[Network, ...]] = field(default_factory=dict)   # CCCID -> the subject's prefixes


class EtsiConnection(threading.Thread):
    """Drains one spool to one collector: connect, send, keep-alive, acknowledge, reconnect."""

    def __init__(self, name: str, address: tuple[str, int], spool: Spool, identity: etsi.Identity,
                 keepalive: float, keepalive_wait: float, tls: TlsSettings | None = None,
                 retry_every: float = 1.0, ack_every: int = 256 << 10, ack_interval: float = 0.2) -> None:
        super().__init__(name=f"etsi-{name}", daemon=True)
        self.address, self.spool, self.identity = address, spool, identity
        self.keepalive, self.keepalive_wait = keepalive, keepalive_wait
        self.tls = tls.context() if tls else None
        self.server_name = (tls.server_name if tls else None) or address[0]
        self.retry_every, self.ack_every, self.ack_interval = retry_every, ack_every, ack_interval
        self.connected = False
        self.connects = self.sent = self.keepalives = self.responses = 0
        self.last_error: str | None = None
        self._halt = threading.Event()

    def describe(self) -> str:
        return f"ETSI TCP{'+TLS' if self.tls else ''} to {self.address[0]}:{self.address[1]}"

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                sock = socket.create_connection(self.address, timeout=5.0)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.server_name)
            except (OSError, ssl.SSLError) as error:
                self._failed(f"cannot reach {self.describe()}: {error}")
                self._halt.wait(self.retry_every)
                continue
            self.connects += 1
            self.connected = True
            log.info("handover: connected, %s (resending from the last acknowledged record)", self.describe())
            try:
                self._serve(sock)
            except (OSError, ssl.SSLError, etsi.EtsiError, TimeoutError) as error:
                self._failed(f"{self.describe()}: {error}")
            finally:
                self.connected = False
                sock.close()
            self._halt.wait(self.retry_every)

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.warning("handover: %s", message)
        self.last_error = message

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(self.keepalive_wait)   # a collector that stops reading times the send out
        position = self.spool.acked
        covered = position                     # sent and followed by a keep-alive
        pending: deque[tuple[int, int, float]] = deque()   # (keep-alive seq, position before it, sent at)
        inbox = bytearray()
        since, last = 0, time.monotonic()
        seq = 0
        while not self._halt.is_set():
            position, records = self.spool.read(position)
            if records:
                data = b"".join(records)
                sock.sendall(data)
                self.sent += len(records)
                since += len(data)
            now = time.monotonic()
            due = position > covered and (since >= self.ack_every or now - last >= self.ack_interval)
            if due or now - last >= self.keepalive:
                sock.sendall(etsi.encode_keepalive(self.identity, seq, time.time()))
                pending.append((seq, position, now))
                self.keepalives += 1
                seq, covered, since, last = (seq + 1) & 0xFFFFFFFF, position, 0, now
            readable, _, _ = select.select([sock], [], [], 0 if records else 0.05)
            if readable or (self.tls is not None and sock.pending()):
                inbox += self._receive(sock)
                for pdu in etsi.split(inbox):
                    self._answer(etsi.decode(pdu), pending)
            if pending and now - pending[0][2] > self.keepalive_wait:
                raise TimeoutError(f"no keep-alive response in {self.keepalive_wait:g} s")

    def _receive(self, sock: socket.socket) -> bytes:
        """What the collector sent, without waiting: over TLS a readable socket may hold only a
        handshake message (a TLS 1.3 session ticket), which is no data and must not block the sender."""
        sock.setblocking(False)
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return b""
        finally:
            sock.settimeout(self.keepalive_wait)
        if not chunk:
            raise ConnectionError("the collector closed the connection")
        return chunk

    def _answer(self, pdu: dict, pending: deque) -> None:
        if pdu["payload"] != ("tRIPayload", ("keep-aliveResponse", 0)):
            return
        answered = pdu["pSHeader"]["sequenceNumber"]
        self.responses += 1
        while pending and pending[0][0] != answered:
            pending.popleft()   # a response answers every keep-alive before it too: TCP keeps order
        if pending:
            self.spool.ack(pending.popleft()[1])


def direction(packet: bytes, targets: tuple[Network, ...]) -> etsi.Direction:
    """fromTarget / toTarget where the intercept names the subject's prefixes, else indeterminate."""
    fields = ip_fields(packet) if targets else None
    if fields is None:
        return "indeterminate"
    _version, src, dst, _protocol, _dport, _sport = fields
    from_target = any(src in net for net in targets)
    to_target = any(dst in net for net in targets)
    if from_target != to_target:
        return "fromTarget" if from_target else "toTarget"
    return "indeterminate"


class EtsiDelivery:
    """One agency's ETSI handover: HI3 (and HI2 where configured), each a spool and a connection."""

    def __init__(self, agency: EtsiAgency) -> None:
        self.agency = agency
        self.identities = {cccid: etsi.Identity(liid, agency.operator_id, agency.network_element_id,
                                                agency.interception_point_id, agency.country)
                           for cccid, liid in agency.liids.items()}
        keepalive_identity = etsi.Identity(etsi.KEEPALIVE_LIID, agency.operator_id, agency.network_element_id,
                                           agency.interception_point_id, agency.country)
        for identity in (*self.identities.values(), keepalive_identity):
            identity.check()
        etsi.load()
        self.spools: dict[str, Spool] = {}
        self.connections: dict[str, EtsiConnection] = {}
        for interface, address in (("hi3", agency.hi3), ("hi2", agency.hi2)):
            if address is None:
                continue
            spool = Spool(agency.spool_dir / interface, agency.spool_max_bytes, agency.overflow,
                          name=f"{agency.name}/{interface}")
            self.spools[interface] = spool
            self.connections[interface] = EtsiConnection(f"{agency.name}-{interface}", address, spool,
                                                         keepalive_identity, agency.keepalive,
                                                         agency.keepalive_wait, agency.tls)
        for connection in self.connections.values():
            connection.start()

    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        """Spool one packet as iPCC for HI3; False if the spool's overflow policy dropped it."""
        identity = self.identities.get(cccid)
        if identity is None:
            return False
        way = direction(packet, self.agency.targets.get(cccid, ()))
        return self.spools["hi3"].append(cccid, lambda seq: etsi.encode_cc(identity, cccid, seq, stamp, packet, way))

    def deliver_iri(self, record: Any) -> bool:
        """Spool one IRI record (mediation/iri.py's IriRecord) for HI2, CIN its CCCID as its content's;
        False where the agency has no HI2 or the record no ETSI form yet (mediation/etsi.py)."""
        identity = self.identities.get(record.cccid)
        iri = etsi.iri_from_record(record)
        if identity is None or "hi2" not in self.spools or iri is None:
            return False
        return self.send_iri(record.cccid, iri)

    def send_iri(self, cccid: int, iri: etsi.SessionIri | etsi.CallIri) -> bool:
        """Spool one ETSI IRI event for HI2 (CIN: the CCCID)."""
        identity = self.identities.get(cccid)
        if identity is None or "hi2" not in self.spools:
            return False
        return self.spools["hi2"].append(cccid, lambda seq: etsi.encode_iri(identity, cccid, seq, iri))

    def flush(self) -> None:
        pass

    def describe(self) -> str:
        return ", ".join(f"{interface} {c.describe()}" for interface, c in self.connections.items())

    def status(self) -> dict:
        return {interface: {"connected": c.connected, "connects": c.connects, "sent": c.sent,
                            "keepalives": c.keepalives, "responses": c.responses, "last_error": c.last_error,
                            "spool_pending_octets": self.spools[interface].pending_bytes(),
                            "alarm": self.spools[interface].alarm,
                            **vars(self.spools[interface].counts)}
                for interface, c in self.connections.items()}

    def close(self) -> None:
        for connection in self.connections.values():
            connection.stop()
        for connection in self.connections.values():
            connection.join(timeout=10)
        for spool in self.spools.values():
            spool.close()
