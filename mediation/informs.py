"""The MD's notification receiver: the IAP agent's SNMPv3 informs (and
traps) of CISCO-TAP2-MIB, taken apart into what they mean for the MD:

- ciscoTap2MIBActive (.399.0.1): a stream became able to intercept;
- ciscoTap2MediationTimedOut (.399.0.2): an intercept ended at its Timeout
  (or was removed at the IAP): the MD re-provisions it if it still wants it;
- ciscoTap2MediationDebug / StreamDebug (.399.0.3 / .4): a fault, with text;
- ciscoTap2Switchover (.399.0.5): the IAP lost its state; re-provision.

Only notifications from the configured USM user at its security level
(authPriv when it has a privacy key) count; anything else is logged and
ignored. The receiver runs its own asyncio loop in a thread and calls
`on_event` from that thread.

    receiver = InformReceiver(Endpoint("198.51.100.10", 162), settings, on_event=print)
    receiver.start(); ...; receiver.stop()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv

from mediation.config import Endpoint, IapSettings
from mediation.tap_mib import MEDIATION, STREAM, TAP2
from mib_bridge import engine_loop
from snmpv3.protocols import AUTH, PRIV

log = logging.getLogger("p4tap.md")

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
DEBUG_ENTRY = TAP2 + (1, 3, 3, 1)
KINDS = {TAP2 + (0, 1): "active", TAP2 + (0, 2): "timed_out", TAP2 + (0, 3): "mediation_debug",
         TAP2 + (0, 4): "stream_debug", TAP2 + (0, 5): "switchover"}
AUTH_PRIV = 3


@dataclass
class Notification:
    kind: str  # active, timed_out, mediation_debug, stream_debug, switchover, or the OID for others
    content_id: int | None = None
    stream: int | None = None
    message: str = ""
    sender: str = ""
    received: float = field(default_factory=time.time)


def interpret(varbinds: list[tuple[tuple[int, ...], object]], sender: str = "") -> Notification | None:
    """What one notification's varbinds (snmpTrapOID first after sysUpTime) say."""
    trap = next((tuple(value) for oid, value in varbinds if tuple(oid) == SNMP_TRAP_OID), None)
    if trap is None:
        return None
    note = Notification(KINDS.get(trap, ".".join(map(str, trap))), sender=sender)
    for oid, value in varbinds:
        oid = tuple(oid)
        if oid[:len(STREAM)] == STREAM and len(oid) == len(STREAM) + 3:
            note.content_id, note.stream = oid[-2], oid[-1]
        elif oid[:len(MEDIATION)] == MEDIATION and len(oid) == len(MEDIATION) + 2:
            note.content_id = oid[-1]
        elif oid[:len(DEBUG_ENTRY)] == DEBUG_ENTRY and len(oid) == len(DEBUG_ENTRY) + 2:
            column = oid[len(DEBUG_ENTRY)]
            if column == 2:
                note.content_id = int(value)
            elif column == 3:
                note.stream = int(value) or None
            elif column == 4:
                note.message = bytes(value).decode("utf-8", "replace")
    return note


class InformReceiver:
    def __init__(self, listen: Endpoint, iap: IapSettings, on_event: Callable[[Notification], None]) -> None:
        self.listen, self.iap, self.on_event = listen, iap, on_event
        self.received: list[Notification] = []
        self.refused = 0
        self.address: tuple[str, int] | None = None  # as bound (port 0 -> the real port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="md-informs", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the inform receiver did not start in time")
        if self._error is not None:
            raise OSError(f"cannot receive informs on {self.listen}: {self._error}") from self._error

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        engine = snmp_engine.SnmpEngine()
        try:
            engine.register_transport_dispatcher(AsyncioDispatcher(loop=loop))
            v6 = ":" in self.listen.host
            sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.listen.host, self.listen.port))  # fails here, not later on the loop
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self.address = sock.getsockname()[:2]
            transport = (udp6.Udp6AsyncioTransport if v6 else udp.UdpAsyncioTransport)(loop=loop)
            snmp_config.add_transport(engine, udp6.DOMAIN_NAME if v6 else udp.DOMAIN_NAME,
                                      transport.open_server_mode(sock=sock))
            iap = self.iap
            snmp_config.add_v3_user(engine, iap.user, AUTH[iap.auth_protocol], iap.auth_key,
                                    PRIV[iap.priv_protocol] if iap.priv_key else snmp_config.USM_PRIV_NONE,
                                    iap.priv_key)
            receiver = ntfrcv.NotificationReceiver(engine, self._callback)
            loop.run_until_complete(asyncio.sleep(0))  # the transport binds on the loop
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            receiver.close(engine)
            engine_loop.close(engine, loop)

    def _callback(self, engine, state_reference, context_engine_id, context_name, varbinds, cb_ctx) -> None:
        context = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        user = str(context.get("securityName", ""))
        level = int(context.get("securityLevel", 0))
        address = context.get("transportAddress")
        sender = str(address[0]) if address else ""
        wanted_level = AUTH_PRIV if self.iap.priv_key else 2
        if user != self.iap.user or level < wanted_level:
            self.refused += 1
            log.warning("ignored a notification from %s: user %r at security level %d", sender, user, level)
            return
        note = interpret([(tuple(oid), value) for oid, value in varbinds], sender)
        if note is None:
            return
        self.received.append(note)
        log.info("IAP %s: %s%s%s%s", sender, note.kind, f" intercept {note.content_id}" if note.content_id else "",
                 f" stream {note.stream}" if note.stream else "", f": {note.message}" if note.message else "")
        try:
            self.on_event(note)
        except Exception:  # the MD's reaction must not take the receiver down
            log.exception("handling %s failed", note.kind)
