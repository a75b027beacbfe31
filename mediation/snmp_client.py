"""The mediation device's side of RFC 3924 interface (d): an SNMPv3 client
that provisions intercepts on CISCO-TAP2-MIB / CISCO-IP-TAP-MIB exactly as
mediation devices do (REFERENCE.md): per intercept three createAndGo SETs,
the mediation row, the citapStreamTable filter, the cTap2StreamTable row;
torn down in reverse with destroy. It also refreshes an intercept's
Timeout and reads back what the IAP holds (`intercepts()`), which is how the
MD audits the IAP (mediation/keeper.py).

    client = TapClient("127.0.0.1", 161, "md1", auth_key, priv_key)
    client.provision(42, ipaddress.ip_address("203.0.113.10"), 7000, timeout,
                     [Filter(src="192.0.2.10/32"), Filter(dst="192.0.2.10/32")])
    client.refresh(42, timeout)
    client.intercepts()[42].streams
    client.remove(42, streams=2)

Synchronous, over pysnmp's asyncio API on a loop of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (ContextData, ObjectIdentity, ObjectType, SnmpEngine, Udp6TransportTarget,
                                         UdpTransportTarget, UsmUserData, bulk_cmd)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.entity import config as snmp_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.proto import rfc1902, rfc1905

from snmpv3 import usm
from snmpv3.protocols import AUTH, PRIV
from snmpv3.session import Session, SessionError
from snmpv3.usm import ERROR_NAMES

TAP2 = (1, 3, 6, 1, 4, 1, 9, 9, 399)
MEDIATION = TAP2 + (1, 1, 2, 1)
STREAM = TAP2 + (1, 2, 1, 1)
IP_STREAM = (1, 3, 6, 1, 4, 1, 9, 9, 394, 1, 1, 2, 1)
SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_ENGINE_ID = (1, 3, 6, 1, 6, 3, 10, 2, 1, 1, 0)
SNMP_ENGINE_BOOTS = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
ACTIVE, CREATE_AND_GO, DESTROY = 1, 4, 6


class TapClientError(Exception):
    """No answer, or the agent refused; `status` is the SNMP error status if it answered."""

    def __init__(self, message: str, status: str | None = None, index: int = 0) -> None:
        super().__init__(message)
        self.status, self.index = status, index


def refusal(status: int, index: int, where: str = "") -> TapClientError:
    """The agent's error status as a TapClientError named as pysnmp names it."""
    name = ERROR_NAMES[status] if status < len(ERROR_NAMES) else str(status)
    return TapClientError(f"{name} at varbind {index}{where}", name, index)


@dataclass(frozen=True)
class Filter:
    """A citapStreamEntry's selectors: "address/length" prefixes, protocol, destination
    and source ports (a media stream is told by its ports, either way: issue 15)."""

    src: str | None = None
    dst: str | None = None
    protocol: int = -1
    dst_ports: tuple[int, int] = (0, 65535)
    src_ports: tuple[int, int] = (0, 65535)

    def matches(self, packet: bytes) -> bool:
        """Whether an IP packet (from its first header byte) is one this filter
        selects, as the IAP decides it: the MD's reference for what it must get."""
        fields = ip_fields(packet)
        if fields is None:
            return False
        version, src, dst, protocol, dst_port, src_port = fields
        for prefix, address in ((self.src, src), (self.dst, dst)):
            if prefix is not None:
                net = ipaddress.ip_network(prefix, strict=False)
                if net.version != version or address not in net:
                    return False
        if self.protocol != -1 and protocol != self.protocol:
            return False
        for ports, port in ((self.dst_ports, dst_port), (self.src_ports, src_port)):
            if ports != (0, 65535) and (port is None or not ports[0] <= port <= ports[1]):
                return False
        return True


def describe(f: Filter) -> str:
    parts = [f"src {f.src}" if f.src else "", f"dst {f.dst}" if f.dst else "",
             f"protocol {f.protocol}" if f.protocol != -1 else "",
             f"dst ports {f.dst_ports[0]}-{f.dst_ports[1]}" if f.dst_ports != (0, 65535) else "",
             f"src ports {f.src_ports[0]}-{f.src_ports[1]}" if f.src_ports != (0, 65535) else ""]
    return ", ".join(p for p in parts if p) or "everything"


def ip_fields(packet: bytes):
    """(version, src, dst, protocol, destination port, source port) of an IP
    packet (the ports None where it has none: a fragment after the first), or None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        protocol = packet[9]
        src, dst = ipaddress.IPv4Address(packet[12:16]), ipaddress.IPv4Address(packet[16:20])
        fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        l4 = header if fragment_offset == 0 else None
    elif version == 6 and len(packet) >= 40:
        protocol, header = packet[6], 40  # no extension headers are walked
        src, dst = ipaddress.IPv6Address(packet[8:24]), ipaddress.IPv6Address(packet[24:40])
        l4 = header
    else:
        return None
    dst_port = src_port = None
    if l4 is not None and protocol in (6, 17, 132) and len(packet) >= l4 + 4:
        src_port = int.from_bytes(packet[l4:l4 + 2], "big")
        dst_port = int.from_bytes(packet[l4 + 2:l4 + 4], "big")
    return version, src, dst, protocol, dst_port, src_port


def date_and_time(moment: datetime) -> bytes:
    """11-octet DateAndTime in UTC."""
    utc = moment.astimezone(timezone.utc)
    return struct.pack("!HBBBBBB", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                       utc.microsecond // 100_000) + b"+\x00\x00"


def parse_date_and_time(data: bytes) -> datetime | None:
    """An agent's DateAndTime (8 octets: its local time; 11: with zone), or None if malformed."""
    if len(data) not in (8, 11):
        return None
    year, month, day, hour, minute, second, decisecond = struct.unpack("!HBBBBBB", data[:8])
    try:
        if len(data) == 11:
            sign = 1 if chr(data[8]) == "+" else -1
            zone = timezone(sign * timedelta(hours=data[9], minutes=data[10]))
            return datetime(year, month, day, hour, minute, min(second, 59), decisecond * 100_000, tzinfo=zone)
        return datetime(year, month, day, hour, minute, min(second, 59), decisecond * 100_000).astimezone()
    except ValueError:
        return None


@dataclass
class IapStream:
    """A stream as the IAP shows it: cTap2StreamTable and its citapStreamTable filter."""

    index: int
    status: int = 0
    enabled: bool = False
    packets: int = 0
    drops: int = 0
    filter_status: int = 0
    filter: Filter | None = None


@dataclass
class IapIntercept:
    """A mediation row and its streams, as read back from the IAP."""

    content_id: int
    status: int = 0
    dest: tuple[str, int] | None = None
    timeout: datetime | None = None
    streams: dict[int, IapStream] = field(default_factory=dict)

    def active_streams(self) -> list[IapStream]:
        return [s for s in self.streams.values() if s.status == ACTIVE and s.filter_status == ACTIVE and s.enabled]


def mediation_varbinds(content_id: int, address, port: int, timeout: datetime, dscp: int = 34
                       ) -> list[tuple[tuple[int, ...], Any]]:
    c = (content_id,)
    return [
        (MEDIATION + (2,) + c, rfc1902.Integer32(1 if address.version == 4 else 2)),
        (MEDIATION + (3,) + c, rfc1902.OctetString(address.packed)),
        (MEDIATION + (4,) + c, rfc1902.Unsigned32(port)),
        (MEDIATION + (5,) + c, rfc1902.Integer32(0)),
        (MEDIATION + (7,) + c, rfc1902.Integer32(dscp)),
        (MEDIATION + (10,) + c, rfc1902.OctetString(date_and_time(timeout))),
        (MEDIATION + (11,) + c, rfc1902.Integer32(1)),  # udp
        (MEDIATION + (13,) + c, rfc1902.Integer32(CREATE_AND_GO)),
    ]


def filter_varbinds(content_id: int, index: int, f: Filter) -> list[tuple[tuple[int, ...], Any]]:
    i = (content_id, index)
    src = ipaddress.ip_network(f.src, strict=False) if f.src else None
    dst = ipaddress.ip_network(f.dst, strict=False) if f.dst else None
    version = (src or dst).version if (src or dst) else 4
    zero = ipaddress.ip_address(0 if version == 4 else "::")
    out = [
        (IP_STREAM + (1,) + i, rfc1902.Integer32(0)),
        (IP_STREAM + (2,) + i, rfc1902.Integer32(1 if version == 4 else 2)),
        (IP_STREAM + (3,) + i, rfc1902.OctetString(ipaddress.ip_address(f.dst.split("/")[0]).packed if dst else zero.packed)),
        (IP_STREAM + (4,) + i, rfc1902.Unsigned32(dst.prefixlen if dst else 0)),
        (IP_STREAM + (5,) + i, rfc1902.OctetString(ipaddress.ip_address(f.src.split("/")[0]).packed if src else zero.packed)),
        (IP_STREAM + (6,) + i, rfc1902.Unsigned32(src.prefixlen if src else 0)),
        (IP_STREAM + (7,) + i, rfc1902.Integer32(0)),
        (IP_STREAM + (8,) + i, rfc1902.Integer32(0)),
    ]
    if f.protocol != -1:
        out.append((IP_STREAM + (10,) + i, rfc1902.Integer32(f.protocol)))
    if f.dst_ports != (0, 65535):
        out += [(IP_STREAM + (11,) + i, rfc1902.Unsigned32(f.dst_ports[0])),
                (IP_STREAM + (12,) + i, rfc1902.Unsigned32(f.dst_ports[1]))]
    if f.src_ports != (0, 65535):
        out += [(IP_STREAM + (13,) + i, rfc1902.Unsigned32(f.src_ports[0])),
                (IP_STREAM + (14,) + i, rfc1902.Unsigned32(f.src_ports[1]))]
    return out + [(IP_STREAM + (16,) + i, rfc1902.Integer32(CREATE_AND_GO))]


def filter_from_columns(columns: dict[int, Any]) -> Filter | None:
    """A citapStreamEntry's columns (number -> value) as a Filter, or None if it has no addresses."""
    def prefix(address_column: int, length_column: int) -> str | None:
        length = int(columns.get(length_column, 0))
        data = bytes(columns.get(address_column, b""))
        if length == 0 or len(data) not in (4, 16):
            return None
        return str(ipaddress.ip_network((ipaddress.ip_address(data), length), strict=False))

    try:
        dst, src = prefix(3, 4), prefix(5, 6)
    except ValueError:
        return None
    ports = (int(columns.get(11, 0)), int(columns.get(12, 65535)))
    src_ports = (int(columns.get(13, 0)), int(columns.get(14, 65535)))
    return Filter(src=src, dst=dst, protocol=int(columns.get(10, -1)), dst_ports=ports, src_ports=src_ports)


def stream_varbinds(content_id: int, index: int, enable: bool = True) -> list[tuple[tuple[int, ...], Any]]:
    i = (content_id, index)
    return [(STREAM + (2,) + i, rfc1902.Integer32(1)), (STREAM + (3,) + i, rfc1902.Integer32(1 if enable else 2)),
            (STREAM + (6,) + i, rfc1902.Integer32(CREATE_AND_GO))]


@dataclass(frozen=True)
class Provisioning:
    """One intercept for `TapClient.provision_many`: `provision`'s arguments."""

    content_id: int
    md_address: Any
    md_port: int
    timeout: datetime
    filters: tuple[Filter, ...]
    dscp: int = 34


def provisioning_sets(p: Provisioning) -> list[tuple[list[tuple[tuple[int, ...], Any]], str]]:
    """An intercept's createAndGo SETs in REFERENCE.md's order (the
    mediation, then per stream its filter and the stream), each with the line
    that says it succeeded."""
    sets = [(mediation_varbinds(p.content_id, ipaddress.ip_address(p.md_address), p.md_port, p.timeout, p.dscp),
             f"cTap2MediationEntry.{p.content_id} createAndGo: copies to {p.md_address}:{p.md_port}")]
    for index, f in enumerate(p.filters, start=1):
        sets += [(filter_varbinds(p.content_id, index, f),
                  f"citapStreamEntry.{p.content_id}.{index} createAndGo: {describe(f)}"),
                 (stream_varbinds(p.content_id, index),
                  f"cTap2StreamEntry.{p.content_id}.{index} createAndGo: intercept enabled")]
    return sets


class TapClient:
    def __init__(self, host: str, port: int, user: str, auth_key: str, priv_key: str | None = None,
                 auth_protocol: str = "SHA-256", priv_protocol: str = "AES", timeout: float = 2.0,
                 retries: int = 1, fast: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = SnmpEngine()
        self.user = UsmUserData(user, auth_key, priv_key, authProtocol=AUTH[auth_protocol],
                                privProtocol=PRIV[priv_protocol] if priv_key else snmp_config.USM_PRIV_NONE)
        kind = Udp6TransportTarget if ":" in host else UdpTransportTarget
        self.target = self._run(kind.create((host, port), timeout=timeout, retries=retries))
        self.context = ContextData()
        # GETs and SETs take snmpv3's fast path where it speaks the user's
        # protocols (HMAC with AES, DES or 3DES): pysnmp's pyasn1 coding costs
        # more per SET than the agent's whole work (BENCHMARKS.md, snmp_provisioning)
        self.session: Session | None = None
        if priv_key and fast and usm.speaks(AUTH[auth_protocol], PRIV[priv_protocol]):
            self.session = Session(host, port, user, AUTH[auth_protocol], auth_key, PRIV[priv_protocol], priv_key,
                                   timeout=timeout, retries=retries)

    def _run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self.engine.close_dispatcher()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:  # none if every request took the fast path
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def __enter__(self) -> TapClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, result) -> list[tuple[tuple[int, ...], Any]]:
        indication, status, index, varbinds = result
        if indication:
            raise TapClientError(str(indication))
        if status:
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            raise TapClientError(f"{name} at varbind {int(index)}", name, int(index))
        return [(tuple(vb[0]), vb[1]) for vb in varbinds]

    # -- SNMP operations ------------------------------------------------------------

    def _request(self, generator, varbinds: list[tuple[tuple[int, ...], Any]]):
        """One GET or SET with numeric OIDs straight to pysnmp's command
        generator. hlapi's get_cmd/set_cmd resolve every OID through a MIB
        view first (even with lookupMib=False), which was a third of this
        client's CPU per request; numeric OIDs need no MIB."""
        return self._check(self._run(self._send(generator, varbinds)))

    async def _send(self, generator, varbinds: list[tuple[tuple[int, ...], Any]]):
        # on the loop: the engine's dispatcher binds to the running loop when LCD first configures it
        target, _ = LCD.configure(self.engine, self.user, self.target, self.context.contextName)
        future = self.loop.create_future()

        def done(engine, handle, indication, status, index, answer, context) -> None:
            if not future.done():
                future.set_result((indication, status, index, answer))

        generator.send_varbinds(self.engine, target, self.context.contextEngineId, self.context.contextName,
                                [(rfc1902.ObjectName(oid), value) for oid, value in varbinds], done)
        return await future

    def _fast(self, kind: int, varbinds: list[tuple[tuple[int, ...], Any]], answer: bool = True,
              max_repetitions: int = 0) -> list[tuple[tuple[int, ...], Any]]:
        try:
            status, index, answer = self.session.request(kind, varbinds, answer, max_repetitions)
        except SessionError as error:
            raise TapClientError(str(error)) from None
        if status:
            raise refusal(status, index)
        return answer

    def set(self, varbinds: list[tuple[tuple[int, ...], Any]], answer: bool = True
            ) -> list[tuple[tuple[int, ...], Any]]:
        """The SET's response varbinds (none if `answer` is False and the fast path took it)."""
        if self.session is not None:
            return self._fast(usm.SET, varbinds, answer)
        return self._request(cmdgen.SetCommandGenerator(), varbinds)

    def get(self, *oids: tuple[int, ...]) -> list[tuple[tuple[int, ...], Any]]:
        varbinds = [(oid, rfc1902.Null("")) for oid in oids]
        if self.session is not None:
            return self._fast(usm.GET, varbinds)
        return self._request(cmdgen.GetCommandGenerator(), varbinds)

    def walk(self, root: tuple[int, ...], repetitions: int = 25) -> list[tuple[tuple[int, ...], Any]]:
        """Every object under `root`, with GETBULK (on the fast path where there
        is one: the keeper's audit walks the tables every audit_interval, and
        a target's tap waits for the walk in progress; through pysnmp a walk
        of a few intercepts took 40 ms, bench.sip_tap_latency)."""
        out, cursor = [], root
        while True:
            if self.session is not None:
                batch = self._fast(usm.BULK, [(cursor, rfc1902.Null(""))], max_repetitions=repetitions)
            else:
                batch = self._check(self._run(bulk_cmd(self.engine, self.user, self.target, self.context, 0,
                                                       repetitions, ObjectType(ObjectIdentity(cursor)),
                                                       lookupMib=False)))
            for oid, value in batch:
                if oid[: len(root)] != root or value.tagSet == rfc1905.endOfMibView.tagSet:
                    return out
                out.append((oid, value))
                cursor = oid
            if not batch:
                return out

    # -- intercepts -------------------------------------------------------------------

    def provision(self, content_id: int, md_address, md_port: int, timeout: datetime,
                  filters: list[Filter], dscp: int = 34, progress: Callable[[str], None] | None = None) -> None:
        """REFERENCE.md's sequence: the mediation, then per stream its filter and the stream.
        `progress` hears of each SET once it succeeded."""
        say = progress or (lambda _: None)
        for varbinds, line in provisioning_sets(Provisioning(content_id, md_address, md_port, timeout,
                                                             tuple(filters), dscp)):
            self.set(varbinds, answer=False)
            say(line)

    def provision_many(self, intercepts: Sequence[Provisioning], window: int = 8,
                       progress: Callable[[str], None] | None = None) -> dict[int, TapClientError | None]:
        """Several intercepts, each in `provision`'s order, up to `window` of
        them in flight at once: what an MD does with many warrants (after an
        IAP restart, say), since the IAP answers one SET at a time and the
        round trips and this side's work then hide behind its. Per content
        ID: None, or the error that stopped it (nothing is undone here; the
        keeper tears down what a refusal left half made). `progress` hears of
        each SET that succeeded, as with `provision`."""
        say = progress or (lambda _: None)
        if self.session is None or window <= 1:
            out: dict[int, TapClientError | None] = {}
            for p in intercepts:
                try:
                    self.provision(p.content_id, p.md_address, p.md_port, p.timeout, list(p.filters), p.dscp,
                                   progress)
                    out[p.content_id] = None
                except TapClientError as error:
                    out[p.content_id] = error
                    if error.status is None:  # no answer: the rest would wait for it in vain
                        out.update((q.content_id, error) for q in intercepts if q.content_id not in out)
                        break
            return out
        steps = [provisioning_sets(p) for p in intercepts]
        sequences = [[(usm.SET, varbinds) for varbinds, _ in sets] for sets in steps]
        try:
            results = self.session.pipeline(sequences, window, lambda i, step: say(steps[i][step][1]))
        except SessionError as error:
            raise TapClientError(str(error)) from None
        out = {}
        for p, result in zip(intercepts, results):
            if isinstance(result, SessionError):
                out[p.content_id] = TapClientError(str(result))
            elif result is not None:
                step, status, index = result
                out[p.content_id] = refusal(status, index, f" of SET {step + 1}")
            else:
                out[p.content_id] = None
        return out

    def remove(self, content_id: int, streams: int | list[int], filters: list[int] | None = None,
               mediation: bool = True) -> None:
        """Tear-down in reverse: each stream, its filter, then the mediation.
        `streams`: how many (1..N), or which indexes; `filters`: which filter
        rows (default: the streams' own)."""
        indexes = list(range(1, streams + 1)) if isinstance(streams, int) else list(streams)
        for index in indexes:
            self.set([(STREAM + (6, content_id, index), rfc1902.Integer32(DESTROY))], answer=False)
        for index in (indexes if filters is None else filters):
            self.set([(IP_STREAM + (16, content_id, index), rfc1902.Integer32(DESTROY))], answer=False)
        if mediation:
            self.set([(MEDIATION + (13, content_id), rfc1902.Integer32(DESTROY))], answer=False)

    def refresh(self, content_id: int, timeout: datetime) -> None:
        """A new cTap2MediationTimeout (the MIB allows it while the row is active)."""
        self.set([(MEDIATION + (10, content_id), rfc1902.OctetString(date_and_time(timeout)))], answer=False)

    def uptime(self) -> int | None:
        """sysUpTime in hundredths of a second (a smaller value than before: the agent
        restarted), or None where this user's view does not include it."""
        value = self.get(SYS_UP_TIME)[0][1]
        if value.tagSet != rfc1902.TimeTicks.tagSet:
            return None
        return int(value)

    def incarnation(self) -> tuple[int | None, bytes | None, int | None]:
        """(sysUpTime, snmpEngineID, snmpEngineBoots) in one GET, each None
        where this user's view lacks it. A restart shows in any of them:
        sysUpTime going back misses a quick restart (the new uptime may pass
        the old), a new engine ID or boot count does not."""
        values = [value for _, value in self.get(SYS_UP_TIME, SNMP_ENGINE_ID, SNMP_ENGINE_BOOTS)]
        uptime = int(values[0]) if values[0].tagSet == rfc1902.TimeTicks.tagSet else None
        engine = bytes(values[1]) if values[1].tagSet == rfc1902.OctetString.tagSet else None
        boots = int(values[2]) if values[2].tagSet == rfc1902.Integer32.tagSet else None
        return uptime, engine, boots

    def intercepts(self) -> dict[int, IapIntercept]:
        """Every mediation row the IAP shows this user, with its streams and filters."""
        out: dict[int, IapIntercept] = {}
        mediations: dict[int, dict[int, Any]] = {}
        for oid, value in self.walk(MEDIATION):
            mediations.setdefault(oid[len(MEDIATION) + 1], {})[oid[len(MEDIATION)]] = value
        for content_id, columns in mediations.items():
            row = out[content_id] = IapIntercept(content_id, status=int(columns.get(13, 0)))
            address = bytes(columns.get(3, b""))
            if len(address) in (4, 16):
                row.dest = (str(ipaddress.ip_address(address)), int(columns.get(4, 0)))
            row.timeout = parse_date_and_time(bytes(columns.get(10, b"")))
        for oid, value in self.walk(STREAM):
            column, (content_id, index) = oid[len(STREAM)], oid[len(STREAM) + 1:]
            stream = out.setdefault(content_id, IapIntercept(content_id)).streams.setdefault(index, IapStream(index))
            if column == 3:
                stream.enabled = int(value) == 1
            elif column == 6:
                stream.status = int(value)
            elif column == 7:
                stream.packets = int(value)
            elif column == 8:
                stream.drops = int(value)
        raw_filters: dict[tuple[int, int], dict[int, Any]] = {}
        for oid, value in self.walk(IP_STREAM):
            column, index = oid[len(IP_STREAM)], oid[len(IP_STREAM) + 1:]
            raw_filters.setdefault(index, {})[column] = value
        for (content_id, index), columns in raw_filters.items():
            stream = out.setdefault(content_id, IapIntercept(content_id)).streams.setdefault(index, IapStream(index))
            stream.filter_status = int(columns.get(16, 0))
            stream.filter = filter_from_columns(columns)
        return out
