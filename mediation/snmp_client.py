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

This module is the transport: the session, its fast path and the order of
SETs. What the rows hold (OIDs, varbinds, the rows read back) is
mediation/tap_mib.py; the filter model is mediation/stream_filter.py. Their
names are still importable from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (ContextData, ObjectIdentity, ObjectType, SnmpEngine, Udp6TransportTarget,
                                         UdpTransportTarget, UsmUserData, bulk_cmd)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.entity import config as snmp_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.proto import rfc1902, rfc1905

from mediation.stream_filter import Filter, describe, ip_fields
from mediation.tap_mib import (ACTIVE, CREATE_AND_GO, DESTROY, IP_STREAM, MEDIATION, SNMP_ENGINE_BOOTS, SNMP_ENGINE_ID,
                               STREAM, SYS_UP_TIME, TAP2, IapIntercept, IapStream, Provisioning, date_and_time,
                               filter_from_columns, filter_varbinds, iap_intercepts, mediation_varbinds,
                               parse_date_and_time, provisioning_sets, stream_varbinds)
from snmpv3 import usm
from snmpv3.protocols import AUTH, PRIV
from snmpv3.session import Session, SessionError
from snmpv3.usm import ERROR_NAMES

__all__ = ["TapClient", "TapClientError", "refusal",
           # re-exported: mediation.stream_filter
           "Filter", "describe", "ip_fields",
           # re-exported: mediation.tap_mib
           "ACTIVE", "CREATE_AND_GO", "DESTROY", "IP_STREAM", "MEDIATION", "SNMP_ENGINE_BOOTS", "SNMP_ENGINE_ID",
           "STREAM", "SYS_UP_TIME", "TAP2", "IapIntercept", "IapStream", "Provisioning", "date_and_time",
           "filter_from_columns", "filter_varbinds", "iap_intercepts", "mediation_varbinds", "parse_date_and_time",
           "provisioning_sets", "stream_varbinds",
           # re-exported: snmpv3.protocols
           "AUTH", "PRIV"]


class TapClientError(Exception):
    """No answer, or the agent refused; `status` is the SNMP error status if it answered."""

    def __init__(self, message: str, status: str | None = None, index: int = 0) -> None:
        super().__init__(message)
        self.status, self.index = status, index


def refusal(status: int, index: int, where: str = "") -> TapClientError:
    """The agent's error status as a TapClientError named as pysnmp names it."""
    name = ERROR_NAMES[status] if status < len(ERROR_NAMES) else str(status)
    return TapClientError(f"{name} at varbind {index}{where}", name, index)


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
        return iap_intercepts(self.walk(MEDIATION), self.walk(STREAM), self.walk(IP_STREAM))
