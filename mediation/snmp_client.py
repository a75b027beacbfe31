"""The mediation device's side of RFC 3924 interface (d): an SNMPv3 client
that provisions intercepts on CISCO-TAP2-MIB / CISCO-IP-TAP-MIB exactly as
mediation devices do (REFERENCE.md): per intercept three createAndGo SETs,
the mediation row, the citapStreamTable filter, the cTap2StreamTable row;
torn down in reverse with destroy.

    client = TapClient("127.0.0.1", 161, "md1", auth_key, priv_key)
    client.provision(42, ipaddress.ip_address("203.0.113.10"), 7000, timeout,
                     [Filter(src="192.0.2.10/32"), Filter(dst="192.0.2.10/32")])
    client.remove(42, streams=2)

Synchronous, over pysnmp's asyncio API on a loop of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (ContextData, ObjectIdentity, ObjectType, SnmpEngine, Udp6TransportTarget,
                                         UdpTransportTarget, UsmUserData, bulk_cmd, get_cmd, set_cmd)
from pysnmp.entity import config as snmp_config
from pysnmp.proto import rfc1902, rfc1905

TAP2 = (1, 3, 6, 1, 4, 1, 9, 9, 399)
MEDIATION = TAP2 + (1, 1, 2, 1)
STREAM = TAP2 + (1, 2, 1, 1)
IP_STREAM = (1, 3, 6, 1, 4, 1, 9, 9, 394, 1, 1, 2, 1)
CREATE_AND_GO, DESTROY = 4, 6

AUTH = {"SHA-224": snmp_config.USM_AUTH_HMAC128_SHA224, "SHA-256": snmp_config.USM_AUTH_HMAC192_SHA256,
        "SHA-384": snmp_config.USM_AUTH_HMAC256_SHA384, "SHA-512": snmp_config.USM_AUTH_HMAC384_SHA512}
PRIV = {"AES": snmp_config.USM_PRIV_CFB128_AES, "AES-192": snmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
        "AES-256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL}


class TapClientError(Exception):
    """No answer, or the agent refused; `status` is the SNMP error status if it answered."""

    def __init__(self, message: str, status: str | None = None, index: int = 0) -> None:
        super().__init__(message)
        self.status, self.index = status, index


@dataclass(frozen=True)
class Filter:
    """A citapStreamEntry's selectors: "address/length" prefixes, protocol, destination ports."""

    src: str | None = None
    dst: str | None = None
    protocol: int = -1
    dst_ports: tuple[int, int] = (0, 65535)


def date_and_time(moment: datetime) -> bytes:
    """11-octet DateAndTime in UTC."""
    utc = moment.astimezone(timezone.utc)
    return struct.pack("!HBBBBBB", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                       utc.microsecond // 100_000) + b"+\x00\x00"


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
    return out + [(IP_STREAM + (16,) + i, rfc1902.Integer32(CREATE_AND_GO))]


def stream_varbinds(content_id: int, index: int, enable: bool = True) -> list[tuple[tuple[int, ...], Any]]:
    i = (content_id, index)
    return [(STREAM + (2,) + i, rfc1902.Integer32(1)), (STREAM + (3,) + i, rfc1902.Integer32(1 if enable else 2)),
            (STREAM + (6,) + i, rfc1902.Integer32(CREATE_AND_GO))]


class TapClient:
    def __init__(self, host: str, port: int, user: str, auth_key: str, priv_key: str | None = None,
                 auth_protocol: str = "SHA-256", priv_protocol: str = "AES", timeout: float = 2.0,
                 retries: int = 1) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = SnmpEngine()
        self.user = UsmUserData(user, auth_key, priv_key, authProtocol=AUTH[auth_protocol],
                                privProtocol=PRIV[priv_protocol] if priv_key else snmp_config.USM_PRIV_NONE)
        kind = Udp6TransportTarget if ":" in host else UdpTransportTarget
        self.target = self._run(kind.create((host, port), timeout=timeout, retries=retries))
        self.context = ContextData()

    def _run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.engine.close_dispatcher()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
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

    def set(self, varbinds: list[tuple[tuple[int, ...], Any]]) -> list[tuple[tuple[int, ...], Any]]:
        objects = [ObjectType(ObjectIdentity(oid), value) for oid, value in varbinds]
        return self._check(self._run(set_cmd(self.engine, self.user, self.target, self.context, *objects,
                                             lookupMib=False)))

    def get(self, *oids: tuple[int, ...]) -> list[tuple[tuple[int, ...], Any]]:
        objects = [ObjectType(ObjectIdentity(oid)) for oid in oids]
        return self._check(self._run(get_cmd(self.engine, self.user, self.target, self.context, *objects,
                                             lookupMib=False)))

    def walk(self, root: tuple[int, ...], repetitions: int = 25) -> list[tuple[tuple[int, ...], Any]]:
        """Every object under `root`, with GETBULK."""
        out, cursor = [], root
        while True:
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
                  filters: list[Filter], dscp: int = 34) -> None:
        """REFERENCE.md's sequence: the mediation, then per stream its filter and the stream."""
        self.set(mediation_varbinds(content_id, ipaddress.ip_address(md_address), md_port, timeout, dscp))
        for index, f in enumerate(filters, start=1):
            self.set(filter_varbinds(content_id, index, f))
            self.set(stream_varbinds(content_id, index))

    def remove(self, content_id: int, streams: int) -> None:
        """Tear-down in reverse: each stream, its filter, then the mediation."""
        for index in range(1, streams + 1):
            self.set([(STREAM + (6, content_id, index), rfc1902.Integer32(DESTROY))])
            self.set([(IP_STREAM + (16, content_id, index), rfc1902.Integer32(DESTROY))])
        self.set([(MEDIATION + (13, content_id), rfc1902.Integer32(DESTROY))])
