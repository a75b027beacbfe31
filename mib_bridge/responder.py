"""The command responder: GET, GETNEXT, GETBULK and SET from pysnmp's message
processing (USM already checked) to the agent's own tree.

Reads answer only what the requester's view holds: an object outside it is
noSuchObject on GET and simply absent from a walk, exactly as an object that
does not exist, so a user outside the lawful-intercept group cannot tell
whether intercepts exist. SETs go to `Agent.set`, all or nothing. Every
request is answered; an unexpected fault becomes genErr and is logged,
never a crash.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pyasn1.codec.ber import encoder
from pysnmp.entity.rfc3413.cmdrsp import CommandResponderBase
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c

from mib_bridge import oids
from mib_bridge.oids import OID
from mib_bridge.security import Requester, address_text

if TYPE_CHECKING:
    from mib_bridge.agent import Agent

log = logging.getLogger("p4tap.snmp")

MAX_BULK_VARBINDS = 256
PDU_OVERHEAD = 64  # octets of a Response-PDU besides its varbinds (ids, status, index, sequence headers)
BEYOND = 2**32  # larger than any sub-identifier: root + (BEYOND,) sorts after the whole subtree

GET, NEXT, BULK, SET = (rfc1905.GetRequestPDU.tagSet, rfc1905.GetNextRequestPDU.tagSet,
                        rfc1905.GetBulkRequestPDU.tagSet, rfc1905.SetRequestPDU.tagSet)


def varbind_size(oid: OID, value) -> int:
    return len(encoder.encode(rfc1902.ObjectName(oid))) + len(encoder.encode(value)) + 4


def varbind_bound(oid: OID, value) -> int:
    """An upper bound of varbind_size, cheaply: 5 octets per sub-identifier,
    an OCTET STRING's length or 11 octets for any number, 12 of headers."""
    try:
        if hasattr(value, "asOctets"):
            data = len(value.asOctets())
        elif hasattr(value, "asTuple"):  # an OBJECT IDENTIFIER value
            data = 5 * len(value.asTuple())
        else:
            data = 11
    except Exception:  # no value (noSuchObject and friends encode to 2 octets)
        data = 11
    return 5 * len(oid) + data + 12


class Responder(CommandResponderBase):
    SUPPORTED_PDU_TYPES = (GET, NEXT, BULK, SET)

    def __init__(self, engine, context, agent: Agent) -> None:
        super().__init__(engine, context)
        self.agent = agent
        self._max_size = 65507

    def process_pdu(self, snmpEngine, messageProcessingModel, securityModel, securityName, securityLevel,
                    contextEngineId, contextName, pduVersion, PDU, maxSizeResponseScopedPDU, stateReference):
        self._max_size = int(maxSizeResponseScopedPDU)
        super().process_pdu(snmpEngine, messageProcessingModel, securityModel, securityName, securityLevel,
                            contextEngineId, contextName, pduVersion, PDU, maxSizeResponseScopedPDU, stateReference)

    def handle_management_operation(self, snmpEngine, stateReference, contextName, PDU):
        varbinds = [(tuple(oid), value) for oid, value in v2c.apiPDU.get_varbinds(PDU)]
        who = None
        try:
            context = snmpEngine.observer.get_execution_context("rfc3412.receiveMessage:request")
            who = Requester(int(context["securityModel"]), bytes(context["securityName"]).decode("utf-8", "replace"),
                            int(context["securityLevel"]), bytes(context["contextName"]),
                            address_text(context["transportAddress"]))
        except Exception:
            log.exception("request without its security context")
        bulk = (int(v2c.apiBulkPDU.get_non_repeaters(PDU)), int(v2c.apiBulkPDU.get_max_repetitions(PDU))) \
            if PDU.tagSet == BULK else (0, 0)
        status, index, answer = self.answer(who, PDU.tagSet, varbinds, bulk, self._max_size)
        self.send_varbinds(snmpEngine, stateReference, status, index, answer)
        self.release_state_information(stateReference)

    def answer(self, who: Requester | None, kind, varbinds: list[tuple[OID, object]], bulk: tuple[int, int],
               max_size: int) -> tuple[object, int, list[tuple[OID, object]]]:
        """(error status, error index, varbinds) of the Response-PDU to one
        request, whichever path decoded it (pysnmp's, or snmpv3's fast path).
        A SET's answer is its own varbinds list (the same object)."""
        try:
            if who is None:
                raise RuntimeError("no requester")
            if kind == SET:
                status, index, answer = self.agent.set(who, varbinds)
            elif kind == GET:
                status, index, answer = 0, 0, self.agent.read(who, varbinds, self._get)
            elif kind == NEXT:
                status, index, answer = 0, 0, self.agent.read(who, varbinds, self._next)
            else:
                status, index, answer = 0, 0, self._bulk(who, bulk, varbinds)
            answer = self._fit(kind, answer, max_size)
            if answer is None:
                status, index, answer = "tooBig", 0, []
        except Exception:
            log.exception("request failed")
            status, index, answer = "genErr", 1 if varbinds else 0, varbinds
        return status, index, answer

    # -- reads ------------------------------------------------------------------

    def _get(self, who: Requester, oid: OID, context) -> tuple[OID, object]:
        if self.agent.access.check(who, "read", oid) is not None:
            self.agent.refused_read(who, oid)
            return oid, rfc1905.noSuchObject
        return oid, self.agent.mib.get(oid, context)

    def _next(self, who: Requester, oid: OID, context) -> tuple[OID, object]:
        """The next object after `oid` in `who`'s view."""
        if oids.is_tap(oid) and not self.agent.access.sees_tap(who):
            self.agent.refused_read(who, oid)
        sees_tap = self.agent.access.sees_tap(who)
        cursor = oid
        while True:
            found = self.agent.mib.next(cursor, context)
            if found is None:
                return oid, rfc1905.endOfMibView
            name, value = found
            if not sees_tap and oids.is_tap(name):
                root = next(r for r in oids.TAP_ROOTS if oids.within(name, r))
                cursor = root + (BEYOND,)
                continue
            if self.agent.access.check(who, "read", name) is None:
                return name, value
            cursor = name

    def _bulk(self, who: Requester, bulk: tuple[int, int], varbinds: list[tuple[OID, object]]
              ) -> list[tuple[OID, object]]:
        non_repeaters, repetitions = max(0, bulk[0]), max(0, bulk[1])
        n = min(non_repeaters, len(varbinds))
        answer = self.agent.read(who, varbinds[:n], self._next)
        repeaters = varbinds[n:]
        if repeaters:
            repetitions = min(repetitions, max(1, MAX_BULK_VARBINDS // len(repeaters)))
        for _ in range(repetitions if repeaters else 0):
            row = self.agent.read(who, repeaters, self._next)
            answer += row
            if all(value.tagSet == rfc1905.endOfMibView.tagSet for _, value in row
                   if hasattr(value, "tagSet")):
                break
            repeaters = [(name, None) for name, _ in row]
        return answer

    def _fit(self, kind, answer: list[tuple[OID, object]], max_size: int) -> list[tuple[OID, object]] | None:
        """Answers that fit the requester's maximum message size; a GETBULK is
        cut short (RFC 3416 4.2.3), anything else that does not fit is tooBig."""
        budget = max_size - PDU_OVERHEAD
        if sum(varbind_bound(oid, value) for oid, value in answer) <= budget:
            return answer  # the common case, without encoding anything
        total = 0
        for i, (oid, value) in enumerate(answer):
            total += varbind_size(oid, value)
            if total > budget:
                return answer[:i] if kind == BULK and i > 0 else None
        return answer
