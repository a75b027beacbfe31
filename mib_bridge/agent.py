"""The SNMPv3 agent: pysnmp's engine on UDP (IPv4 and IPv6), the TAP-MIB
tables, and the controller behind them.

The agent runs its asyncio loop in a thread of its own (the controller is
thread-based). Everything that touches the tables runs on that loop: requests,
the once-a-second tick, and the controller's expiry reports (handed over with
call_soon_threadsafe). Controller calls are made from the loop and block it:
requests are served one at a time, which is also what makes a SET all or
nothing against every other request.

    agent = Agent(load_config(path), controller)
    agent.start()            # binds, or raises with the reason
    agent.addresses          # [Endpoint(...), ...] as bound (port 0 -> the real port)
    agent.stop()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import context as snmp_context
from pysnmp.proto import rfc1902

from controller.audit import AuditError
from controller.model import MAX_CONTENT_ID, Mediation, StreamKey
from controller.service import Controller
from mib_bridge import engine_loop, oids
from mib_bridge.bridge import Bridge
from mib_bridge.config import AgentConfig, Endpoint
from mib_bridge.counters import Counters, counter_scalars
from mib_bridge.fast_path import FastPath
from mib_bridge.refusals import Refusals
from mib_bridge.fast_path import transport as fast_transport
from mib_bridge.mib import Mib, TapTables
from mib_bridge.notifications import Notifier
from mib_bridge.oids import OID
from mib_bridge.responder import Responder
from mib_bridge.scalars import tap_scalars
from mib_bridge.security import Access, Requester, configure, watch_security_failures
from mib_bridge.system import system_scalars
from mib_bridge.transaction import Outcome, SetTransaction

log = logging.getLogger("p4tap.snmp")

TICK = 1.0  # seconds between lifetime / consistency checks
RECEIVE_BUFFER = 4 << 20  # a few oversized junk datagrams must not fill the socket before the MD's request
DOMAINS = {4: udp.DOMAIN_NAME, 6: udp6.DOMAIN_NAME}
TRANSPORTS = {4: udp.UdpAsyncioTransport, 6: udp6.Udp6AsyncioTransport}


class AgentError(RuntimeError):
    pass


class ReadContext:
    """Per-request state of a read: counters, and whether the switch holds a
    stream, come from the bridge (read from the switch, at most once per
    COUNTER_TTL)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def counters(self, index: tuple[int, int]):
        return self.bridge.counters(StreamKey(*index))

    def held(self, index: tuple[int, int]) -> bool:
        """False if a stream the controller installed is not (all) on the switch right now."""
        intercept = self.bridge.installed.get(index[0])
        if intercept is None or StreamKey(*index) not in {s.key for s in intercept.streams}:
            return True  # nothing claimed on the switch for this row
        return self.bridge.held(StreamKey(*index))


class Agent:
    def __init__(self, config: AgentConfig, controller: Controller, fast_path: bool = True) -> None:
        """`fast_path=False` leaves every message to pysnmp (mib_bridge/fast_path.py says why there is one)."""
        self.config = config
        self.use_fast_path = fast_path
        self.fast_path: FastPath | None = None
        self.controller = controller
        self.tables = TapTables(config.debug_age_minutes, config.debug_max_entries)
        self.bridge = Bridge(controller, self.tables, config.switches)
        self.addresses: list[Endpoint] = []
        self.started = time.monotonic()
        self._next_index = 1
        self._denied: list[OID] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._running = False
        self.engine = None
        self.access: Access | None = None
        self.notifier: Notifier | None = None
        self.mib: Mib | None = None
        self.refusals = Refusals(controller.audit.append_many)
        self.counters: Counters | None = None
        controller.on_expired(self._on_expired)

    # -- lifecycle ----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            raise AgentError("agent already started")
        self.refusals.start()
        self._thread = threading.Thread(target=self._run, name="p4tap-snmp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AgentError("the SNMP agent did not start in time")
        if self._startup_error is not None:
            self._thread.join(5)
            self._thread = None
            self.refusals.stop()
            raise AgentError(f"the SNMP agent could not start: {self._startup_error}") from self._startup_error
        log.info("SNMP agent listening on %s", ", ".join(map(str, self.addresses)))
        for note in filter(None, (user.weak_note() for user in self.config.users)):
            log.warning("SNMP %s: move it to SHA and AES when its mediation device can", note)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._running = False
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self.refusals.stop()

    def flush_audit(self) -> None:
        """Write the refusals still pending in the current batch (mib_bridge/refusals.py) now."""
        self.refusals.flush()

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._setup(loop)
        except BaseException as error:  # reported to start()
            self._startup_error = error
            self._close(loop)
            self._ready.set()
            return
        self._running = True
        self._ready.set()
        if self.controller.intent_lost:  # the rows the MDs provisioned are gone: they must provision again
            log.error("intent of %d intercept(s) lost across the restart: sending ciscoTap2Switchover",
                      len(self.controller.intent_lost))
            self.notifier.switchover()
        loop.call_later(TICK, self._tick)
        try:
            loop.run_forever()
        finally:
            self._close(loop)

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        engine_loop.close(self.engine, loop)

    def _setup(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.config
        engine_id = rfc1902.OctetString(cfg.engine_id) if cfg.engine_id else None
        self.engine = snmp_engine.SnmpEngine(snmpEngineID=engine_id, maxMessageSize=cfg.max_message_size)
        self.engine.register_transport_dispatcher(AsyncioDispatcher(loop=loop))
        self.counters = Counters(self.engine)
        if self.use_fast_path:
            self.fast_path = FastPath(self.engine, cfg, self.refusals, self.counters)
        domains: dict[int, tuple[int, ...]] = {}
        for i, endpoint in enumerate(cfg.listen):
            sock = self._bind(endpoint)
            host, port = sock.getsockname()[:2]
            self.addresses.append(Endpoint(host, port))
            family = endpoint.family
            domain = DOMAINS[family] if family not in domains else DOMAINS[family] + (i,)
            domains.setdefault(family, domain)
            kind = TRANSPORTS[family] if self.fast_path is None else fast_transport(TRANSPORTS[family], self.fast_path)
            snmp_config.add_transport(self.engine, domain, kind(loop=loop).open_server_mode(sock=sock))
        for family in {n.target.family for n in cfg.notify} - set(domains):  # notify over a family we do not serve
            domains[family] = DOMAINS[family]
            wildcard = "0.0.0.0" if family == 4 else "::"
            snmp_config.add_transport(self.engine, domains[family],
                                      TRANSPORTS[family](loop=loop).open_client_mode((wildcard, 0)))
        configure(self.engine, cfg)
        self.access = Access(self.engine, cfg)
        watch_security_failures(self.engine, self._security_failure)
        self.notifier = Notifier(self.engine, cfg, domains)
        self.mib = Mib([
            *system_scalars(cfg.sys_name, cfg.sys_location, cfg.sys_contact, self.started, self._engine_values,
                            cfg.sys_descr, cfg.sys_object_id),
            *tap_scalars(self._new_index, lambda: self.tables.debug.age_minutes,
                         lambda: self.tables.debug.max_entries),
            *counter_scalars(self.counters),
            self.tables.mediations, self.tables.streams, self.tables.debug, self.tables.ip_streams,
        ])
        responder = Responder(self.engine, snmp_context.SnmpContext(self.engine), self)
        if self.fast_path is not None:
            self.fast_path.responder = responder
        self.bridge.sync(force=True)
        self._report_refusals()

    @staticmethod
    def _bind(endpoint: Endpoint) -> socket.socket:
        family = socket.AF_INET if endpoint.family == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((endpoint.host, endpoint.port))
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            raise AgentError(f"cannot listen on {endpoint}: {error.strerror}") from None
        return sock

    def _engine_values(self) -> tuple[bytes, int, int, int]:
        boots, max_size = self.engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineMaxMessageSize")
        return (bytes(self.engine.snmpEngineID), int(boots.syntax), int(time.monotonic() - self.started),
                int(max_size.syntax))

    # -- requests (on the loop) ---------------------------------------------------

    def read(self, who: Requester, varbinds: list[tuple[OID, Any]], fetch) -> list[tuple[OID, Any]]:
        """GET or GETNEXT of each varbind through `fetch(who, oid, context)`."""
        if self.access.sees_tap(who):
            self._sync()
        context = ReadContext(self.bridge)
        self._denied = []
        try:
            return [fetch(who, oid, context) for oid, _ in varbinds]
        finally:
            if self._denied:
                self._audit(who.actor, "snmp-refuse", op="read", oids=[oids.text(o) for o in self._denied[:16]],
                            count=len(self._denied), reason="outside the requester's view")
            self._denied = None

    def refused_read(self, who: Requester, oid: OID) -> None:
        if self._denied is not None and oids.is_tap(oid):
            self._denied.append(oid)

    def set(self, who: Requester, varbinds: list[tuple[OID, Any]]) -> tuple[Any, int, list[tuple[OID, Any]]]:
        """One SET PDU: (error status, error index, varbinds) for the response."""
        if self.access.sees_tap(who):
            self._sync()
        transaction = SetTransaction(self.mib, self.tables, self.bridge,
                                     lambda oid: self.access.check(who, "write", oid))
        outcome = transaction.run(varbinds, who.actor)
        if outcome.error is not None:
            self._refused_set(who, outcome)
            error = outcome.error
            return error.status, (error.index or 0) + 1, varbinds
        for key in outcome.activated:
            if self.tables.mediations.notifies(self.tables.mediations.rows.get((key.content_id,))):
                self.notifier.active(key)
        return 0, 0, varbinds

    def _refused_set(self, who: Requester, outcome: Outcome) -> None:
        error = outcome.error
        where = oids.text(outcome.error_oid) if outcome.error_oid else None
        self._audit(who.actor, "snmp-refuse", op="set", status=error.status, index=(error.index or 0) + 1,
                    oid=where, reason=error.reason)
        if error.status in ("noAccess", "authorizationError") or not outcome.content_ids:
            return  # nothing about an intercept row this user may see
        content_id = error.content_id
        stream_id = outcome.stream_id
        if content_id is None and outcome.error_oid is not None:
            for table in self.tables.intercept_tables:
                split = table.split(outcome.error_oid)
                if split is not None and table.valid_index(split[1]):
                    content_id = split[1][0]
                    stream_id = split[1][1] if len(split[1]) == 2 else 0
        if content_id is None:
            content_id = min(outcome.content_ids)
        name = f"{where} " if where else ""
        index = self.tables.debug.add(content_id, stream_id,
                                      f"SET refused, {error.status}: {name}{error.reason}")
        fault = error.content_id is not None  # the controller refused, or a switch failed
        if fault and self.tables.mediations.notifies(self.tables.mediations.rows.get((content_id,))):
            self.notifier.debug(self.tables.debug, index)

    def _new_index(self) -> int:
        """cTap2MediationNewIndex: a ContentId no row and no intercept uses, new at every read."""
        used = self.bridge.installed.keys() | {i[0] for i in self.tables.mediations.rows}
        candidate = self._next_index
        while candidate in used:
            candidate = candidate % MAX_CONTENT_ID + 1
        self._next_index = candidate % MAX_CONTENT_ID + 1
        return candidate

    # -- keeping the rows true (on the loop) ------------------------------------------

    def _sync(self) -> None:
        for mediation in self.bridge.sync():
            self._timed_out(mediation.content_id, mediation.notification_enable)
        self._report_refusals()

    def _report_refusals(self) -> None:
        """A switch refused an intercept of the intent (its streams read
        notInService): say why in cTap2DebugTable, once per refusal."""
        refusals, self.bridge.new_refusals = self.bridge.new_refusals, []
        for content_id, switch, reason in refusals:
            index = self.tables.debug.add(content_id, 0, f"refused by switch {switch}: {reason}")
            if self.tables.mediations.notifies(self.tables.mediations.rows.get((content_id,))):
                self.notifier.debug(self.tables.debug, index)

    def _timed_out(self, content_id: int, notify: bool) -> None:
        log.info("intercept %d ended without its mediation device asking (timeout or removal)", content_id)
        if notify:
            self.notifier.timed_out(content_id)

    def _tick(self) -> None:
        try:
            self._sync()
            for content_id in self.bridge.lapsed(datetime.now(timezone.utc)):
                notify = self.tables.mediations.notifies(self.tables.mediations.rows.get((content_id,)))
                self.bridge.drop(content_id)
                self._timed_out(content_id, notify)
            self.tables.debug.expire()
            self.counters.sync()
        except Exception:
            log.exception("agent tick failed")
        finally:
            if self._running:
                self._loop.call_later(TICK, self._tick)

    def _on_expired(self, mediation: Mediation) -> None:
        """Controller thread: an intercept reached its timeout and was removed."""
        loop = self._loop
        if self._running and loop is not None:
            try:
                loop.call_soon_threadsafe(self._expired, mediation)
            except RuntimeError:  # the agent stopped meanwhile: nothing left to update
                pass

    def _expired(self, mediation: Mediation) -> None:
        if self.bridge.expired(mediation):
            self._timed_out(mediation.content_id, mediation.notification_enable)

    # -- audit --------------------------------------------------------------------

    def _security_failure(self, actor: str, reason: str, version: str) -> None:
        """pysnmp refused a message: audited in the refusals' batch, as the fast path's own drops are."""
        user, _, where = actor.removeprefix("snmp:").partition(" from ")
        self.refusals.add("refused by pysnmp", user, where, version, reason)

    def _audit(self, actor: str, action: str, **detail: Any) -> None:
        try:
            self.controller.audit.append(actor, action, **detail)
        except (AuditError, OSError) as error:  # a full disk: said in one line, the request was refused anyway
            log.error("could not write the audit record of a refused request (%s): %s", action, error)
        except Exception:
            log.exception("could not write the audit record of a refused request")
