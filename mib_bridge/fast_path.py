"""The agent's fast path: a well-formed authPriv request from a configured
user is answered without pysnmp's message processing; every other datagram
goes to pysnmp exactly as it arrived.

Why: pysnmp codes a message through pyasn1 objects, ~6 ms of CPU per SET on
this machine, more than the controller's own work per tap (BENCHMARKS.md,
snmp_provisioning). Here a request costs what its bytes cost (snmpv3.ber).

What it serves, it serves as pysnmp would (RFC 3412/3414): the message is
for this engine, the user is one of ours with authPriv keys, the digest
verifies, boots and time are inside the 150 s window, the context is the
default one, and the PDU is GET, GETNEXT, GETBULK or SET. The answer comes
from the same Responder.answer that pysnmp's path calls, so views, the
all-or-nothing SET and the audit of refusals are one code. Anything else,
discovery, a wrong key, a stale time, an unknown user or context, a
malformed or unusual encoding, is left to pysnmp, which reports and counts
it (usmStats*) as before: the fast path never refuses anything itself.
Not counted here: snmpInPkts and friends of SNMPv2-MIB for the messages it
serves.
"""

from __future__ import annotations

import logging
import time

from pysnmp.entity import engine as snmp_engine

from mib_bridge import responder as responder_module
from mib_bridge.config import AgentConfig
from mib_bridge.responder import Responder
from mib_bridge.security import AUTH, PRIV, USM, Requester, address_text
from snmpv3 import ber, usm

log = logging.getLogger("p4tap.snmp")

KINDS = {usm.GET: responder_module.GET, usm.NEXT: responder_module.NEXT, usm.SET: responder_module.SET,
         usm.BULK: responder_module.BULK}
REQUEST_FLAGS = usm.AUTH_PRIV | usm.REPORTABLE
MAX_BOOTS = 2**31 - 1
HEADER_ROOM = 48  # RFC 3414 3.2.9: what a response's header may take besides its security parameters


class FastPath:
    def __init__(self, engine: snmp_engine.SnmpEngine, config: AgentConfig) -> None:
        self.responder: Responder | None = None  # set once the agent made it; until then pysnmp answers
        self.engine_id = bytes(engine.snmpEngineID)
        builder = engine.get_mib_builder()
        boots, engine_time, max_size = builder.import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime", "snmpEngineMaxMessageSize")
        self.boots, self.max_size = int(boots.syntax), int(max_size.syntax)
        self._started = int(engine_time.syntax)  # pysnmp's snmpEngineTime is time.time() less this
        self.keys = {}
        for user in config.users:
            if user.priv_protocol is None:
                continue
            keys = usm.Keys.derive(user.name.encode(), AUTH[user.auth_protocol], user.auth_key,
                                   PRIV[user.priv_protocol], user.priv_key, self.engine_id)
            if keys is not None:
                self.keys[keys.user] = (user.name, keys)
        self.served = 0

    def engine_time(self) -> int:
        return int(time.time() - self._started)

    def admit(self, datagram: bytes, address):
        """What the fast path needs to answer the request, or None: pysnmp's to handle."""
        try:
            message = usm.parse(datagram)
        except ber.Malformed:
            return None
        known = self.keys.get(message.user)
        if (known is None or self.responder is None or message.engine_id != self.engine_id or message.flags != REQUEST_FLAGS
                or message.boots != self.boots or self.boots == MAX_BOOTS
                or abs(self.engine_time() - message.time) > usm.TIME_WINDOW):
            return None
        name, keys = known
        try:
            pdu = usm.parse_scoped(usm.open_scoped(message, keys))
        except (usm.Rejected, ber.Malformed):
            return None
        kind = KINDS.get(pdu.kind)
        if kind is None or pdu.context_engine_id != self.engine_id or pdu.context_name != b"" \
                or (kind != responder_module.BULK and (pdu.error_status or pdu.error_index)):
            return None
        return message, keys, Requester(USM, name, 3, b"", address_text(address)), kind, pdu

    def respond(self, message: usm.Message, keys: usm.Keys, who: Requester, kind, pdu: usm.Pdu) -> bytes:
        """Carry out the request (once) and seal its response."""
        room = message.max_size - message.security_length - HEADER_ROOM  # as pysnmp computes it
        status, index, answer = self.responder.answer(who, kind, pdu.varbinds, (pdu.error_status, pdu.error_index),
                                                      room)
        try:
            varbinds = pdu.raw_varbinds if answer is pdu.varbinds else ber.encode_varbinds(answer)
            code = status if isinstance(status, int) else usm.ERROR_CODES[status]
        except Exception:  # an answer we cannot encode: the request was carried out all the same
            log.exception("SNMP fast path could not encode an answer")
            varbinds, code, index = pdu.raw_varbinds, usm.ERROR_CODES["genErr"], 1 if pdu.varbinds else 0
        scoped = usm.scoped_pdu(self.engine_id, b"", usm.RESPONSE, pdu.request_id, code, index, varbinds)
        self.served += 1
        return usm.seal(keys, message.msg_id, self.max_size, usm.AUTH_PRIV, self.engine_id, self.boots,
                        self.engine_time(), scoped)


def transport(base: type, fast_path: FastPath) -> type:
    """pysnmp's UDP transport class `base`, with `fast_path` in front of its receive."""

    class FastTransport(base):
        def datagram_received(self, datagram, transportAddress):
            self.loop.call_soon(self._fast, datagram, transportAddress)

        def _fast(self, datagram, address) -> None:
            try:
                admitted = fast_path.admit(datagram, address)
            except Exception:  # a fault of ours before anything was done: pysnmp still answers
                log.exception("SNMP fast path failed on a request; pysnmp takes it")
                admitted = None
            if admitted is None:
                self._callback_function(self, address, datagram)
                return
            try:
                self.transport.sendto(fast_path.respond(*admitted), address)
            except Exception:
                log.exception("SNMP fast path could not answer a request it carried out")

    return FastTransport
