"""The agent's front door: every datagram is screened here first. A
well-formed authPriv request from a configured user is answered without
pysnmp's message processing; what pysnmp must answer goes to it; the rest
is dropped, counted and audited here.

Why a fast path: pysnmp codes a message through pyasn1 objects, ~6 ms of
CPU per SET on this machine, more than the controller's own work per tap
(BENCHMARKS.md, snmp_provisioning). Here a request costs what its bytes
cost (snmpv3.ber).

Why a front door (issue 12): pysnmp decodes a whole message before it can
refuse it, raises on some malformed input (a TypeError escaping with a
2 KB traceback for `a0 00`; an indefinite-length NULL in a varbind leaks
its per-request state), and a few hundred junk datagrams a second kept its
loop from the mediation device. So, from the first octets on:
- not BER, or not an SNMP message: dropped, snmpInASNParseErrs;
- SNMPv1/v2c or another version: dropped, snmpInBadVersions;
- larger than the agent's maximum message size ([agent] max_message_size,
  snmpEngineMaxMessageSize): dropped unread, snmpInASNParseErrs (RFC 3417
  3.2: an entity need not take more than it says it accepts);
- SNMPv3 whose header the strict reader (snmpv3.ber: definite lengths,
  minimal integers, values in range) refuses: dropped, snmpInASNParseErrs.
  pysnmp only ever sees messages that reader accepts, plaintext scoped PDU
  included;
- what cannot be authenticated is never decoded past its header (issue
  26: 56 KB of varbinds cost pysnmp up to 0.7 s each): an unknown user,
  too low a security level (noAuthNoPriv for a configured user), a wrong
  digest get, from the header alone, the Report pysnmp's USM sends
  (RFC 3414 3.2: usmStatsUnknownUserNames, usmStatsUnsupportedSecLevels,
  usmStatsWrongDigests; request-id 0, field for field pysnmp's), counted,
  audited, within a budget of Reports per host; engine ID discovery (RFC
  3414 4) gets its usmStatsUnknownEngineIDs Report likewise, its scoped
  PDU read only when it is as small as a discovery is;
- what pysnmp must still answer unauthenticated (another engine's ID, a
  stale time, a decryption error) goes to it within a budget of pysnmp's
  time per source host and overall (mib_bridge/budget.py), charged by the
  message's size up front and by the time pysnmp took after; over it,
  dropped and counted in the usmStats* counter pysnmp would have used;
- authenticated with a user's keys: a second copy of a message seen inside
  the time window is a replay, dropped (mib_bridge/replay.py: exact over
  the window at any rate; past its memory's cap, new messages of that user
  are dropped, never old ones forgotten); a scoped
  PDU the strict reader refuses is dropped, snmpInASNParseErrs; a
  request is served as pysnmp would serve it (RFC 3412/3414: for this
  engine, boots and time in the window, the default context, GET,
  GETNEXT, GETBULK or SET), the rest (another context, a non-request PDU)
  goes to pysnmp.
The answer comes from the same Responder.answer that pysnmp's path calls,
so views, the all-or-nothing SET and the audit of refusals are one code.
Every drop is audited (aggregated, in batches: mib_bridge/refusals.py) and
logged at most once per kind per interval; anything pysnmp raises on a
datagram is a counted drop with a one-line log, never a traceback. The
counters are pysnmp's own scalars (mib_bridge/counters.py), so they are
the sum of what both paths saw.
"""

from __future__ import annotations

import logging
import time

from pysnmp.entity import engine as snmp_engine

from mib_bridge import budget, replay, responder as responder_module
from mib_bridge.budget import Budget
from mib_bridge.config import AgentConfig
from mib_bridge.counters import (ARCS, BAD_VERSIONS, DECRYPTION_ERRORS, IN_PKTS, INVALID_MSGS, NOT_IN_TIME, PARSE_ERRS, UNKNOWN_ENGINES,
                                 UNKNOWN_USERS, UNSUPPORTED_LEVELS, WRONG_DIGESTS, Counters)
from mib_bridge.refusals import Refusals
from mib_bridge.replay import ReplayMemory
from mib_bridge.responder import Responder
from mib_bridge.security import AUTH, PRIV, USM, Requester, address_text
from snmpv3 import ber, usm

log = logging.getLogger("p4tap.snmp")

KINDS = {usm.GET: responder_module.GET, usm.NEXT: responder_module.NEXT, usm.SET: responder_module.SET,
         usm.BULK: responder_module.BULK}
REQUEST_FLAGS = usm.AUTH_PRIV | usm.REPORTABLE
PRIV_FLAG = 0x02
MAX_BOOTS = 2**31 - 1
HEADER_ROOM = 48  # RFC 3414 3.2.9: what a response's header may take besides its security parameters
VERSIONS = {0: "v1", 1: "v2c"}
CONFIRMED = (usm.GET, usm.NEXT, usm.SET, usm.BULK, 0xA6)  # RFC 3411 2.8: Confirmed Class (0xA6: Inform)
DISCOVERY_MAX = 1024  # octets of a discovery's scoped PDU read at most (net-snmp's and pysnmp's: ~30)
REPORTABLE_IF_AUTH = usm.REPORTABLE  # msgFlags of pysnmp's Report to a request that was authenticated
HANDOFF = object()  # screen(): pysnmp's to handle


class FastPath:
    def __init__(self, engine: snmp_engine.SnmpEngine, config: AgentConfig, refusals: Refusals,
                 counters: Counters) -> None:
        self.responder: Responder | None = None  # set once the agent made it; until then pysnmp answers
        self.engine_id = bytes(engine.snmpEngineID)
        builder = engine.get_mib_builder()
        boots, engine_time, max_size = builder.import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime", "snmpEngineMaxMessageSize")
        self.boots, self.max_size = int(boots.syntax), int(max_size.syntax)
        self._started = int(engine_time.syntax)  # pysnmp's snmpEngineTime is time.time() less this
        self.keys = {}
        for user in config.users:  # every user: authNoPriv ones are authenticated here, and served by pysnmp
            keys = usm.Keys.derive(user.name.encode(), AUTH[user.auth_protocol], user.auth_key,
                                   PRIV.get(user.priv_protocol), user.priv_key, self.engine_id)
            if keys is not None:
                self.keys[keys.user] = (user.name, keys)
        self.served = 0
        self.users = {user.name.encode() for user in config.users}
        self.refusals = refusals
        self.counters = counters
        self.budget = Budget()
        self.reports = Budget(budget.REPORTS_PER_HOST, budget.REPORTS_GLOBAL)
        self.charged: tuple[str, float] | None = None  # the last handoff's host and estimate
        self.replays = ReplayMemory()

    def engine_time(self) -> int:
        return int(time.time() - self._started)

    def screen(self, datagram: bytes, address):
        """What to do with a datagram: (the admitted request to `respond` to),
        HANDOFF (pysnmp's), bytes (a Report made from the header, to send as
        is), or None (dropped: counted, audited, maybe logged)."""
        if len(datagram) < 2 or datagram[0] != ber.SEQUENCE:
            return self._drop("undecodable", "?", address, "?", "not an SNMP message", PARSE_ERRS)
        try:
            _, start, stop = ber.read(datagram, 0, len(datagram))
            version, _ = ber.read_integer(datagram, start, stop)
        except ber.Malformed:
            return self._drop("undecodable", "?", address, "?", "not an SNMP message", PARSE_ERRS)
        if version != 3:
            if version in VERSIONS:
                return self._drop("SNMPv1/v2c", "community", address, VERSIONS[version],
                                  "SNMPv1/v2c: only SNMPv3 is served", BAD_VERSIONS)
            return self._drop("unsupported version", "?", address, str(version), "unsupported SNMP version",
                              BAD_VERSIONS)
        if len(datagram) > self.max_size:  # RFC 3417 3.2, RFC 3412 6: larger than this engine accepts
            return self._drop("too big", "?", address, "v3",
                              f"larger than the agent's maximum message size ({self.max_size})", PARSE_ERRS)
        try:
            message = usm.parse(datagram)  # the header: nothing of the scoped PDU is decoded yet
        except ber.Malformed as error:
            return self._drop("malformed", "?", address, "v3", f"malformed SNMPv3 message: {error}", PARSE_ERRS)
        user = message.user
        if message.flags & usm.AUTH_PRIV == PRIV_FLAG:  # RFC 3412 7.2 5: privacy without authentication
            return self._drop("invalid flags", user, address, "v3", "privacy without authentication", INVALID_MSGS)
        # What cannot be authenticated is answered from its header alone,
        # as pysnmp's USM answers it (RFC 3414 3.2 3-6), never decoded further
        if message.engine_id != self.engine_id:
            if not 4 < len(message.engine_id) < 33:  # RFC 3414 3.2 3b, 4: engine ID discovery
                return self._discovery(message, address)
            return self._to_pysnmp(message, address, "unknown engine ID",
                                   UNKNOWN_ENGINES if message.flags & usm.REPORTABLE else None)
        known = self.keys.get(message.user)
        if known is None:
            if message.user not in self.users and message.user:
                return self._report(message, address, "unknown user", UNKNOWN_USERS)
            return self._to_pysnmp(message, address, "user not on the fast path" if message.user else "no user name",
                                   None)
        name, keys = known
        if not message.flags & usm.AUTH:
            return self._report(message, address, "unsupported security level", UNSUPPORTED_LEVELS)
        try:
            usm.authenticate(message, keys)
        except usm.Rejected:
            return self._report(message, address, "wrong digest", WRONG_DIGESTS)
        if not message.flags & PRIV_FLAG:  # authNoPriv: its plaintext goes to pysnmp only if the strict reader takes it
            try:
                usm.parse_scoped(message.data)
            except ber.Malformed as error:
                return self._drop("malformed", name, address, "v3", f"malformed scoped PDU: {error}", PARSE_ERRS)
        now = self.engine_time()
        if not self._timely(message, now):
            return self._to_pysnmp(message, address, "not in time window", NOT_IN_TIME)
        refused = self.replays.refusal(message, now)
        if refused == replay.REPLAY:
            return self._drop("replay", name, address, "v3", "replay of an authenticated message inside the time window")
        if refused is not None:
            return self._drop("replay memory full", name, address, "v3",
                              f"over {replay.CAPACITY} authenticated messages of this user in the time window "
                              "(the replay memory forgets none early)")
        try:
            admitted = self._admit(message, name, keys, address)
        except ber.Malformed as error:
            return self._drop("malformed", name, address, "v3", f"malformed scoped PDU: {error}", PARSE_ERRS)
        except usm.Rejected:
            return self._to_pysnmp(message, address, "decryption error", DECRYPTION_ERRORS)
        if admitted is None:
            self.counters.sync()
            return HANDOFF
        return admitted

    def admit(self, datagram: bytes, address):
        """What screen() would serve, with nothing counted, remembered or refused; else None."""
        try:
            message = usm.parse(datagram)
            known = self.keys.get(message.user)
            if known is None or message.engine_id != self.engine_id or not self._timely(message, self.engine_time()):
                return None
            usm.authenticate(message, known[1])
            return self._admit(message, *known, address)
        except (ber.Malformed, usm.Rejected):
            return None

    def _timely(self, message: usm.Message, now: int) -> bool:
        return message.boots == self.boots != MAX_BOOTS and abs(now - message.time) <= usm.TIME_WINDOW

    def _admit(self, message: usm.Message, name: str, keys: usm.Keys, address):
        """The request of an authenticated message in the window, or None
        (pysnmp's); raises Malformed for a scoped PDU the strict reader refuses."""
        if message.flags & usm.AUTH_PRIV != usm.AUTH_PRIV:
            return None  # authNoPriv: its plaintext was read already
        scoped = usm.decipher(message, keys)
        try:
            pdu = usm.parse_scoped(scoped)
        except ber.Malformed:
            if not _framed(scoped):  # what a wrong privacy key gives: pysnmp's decryptionError Report
                raise usm.Rejected("decryption error") from None
            raise
        if self.responder is None or message.flags != REQUEST_FLAGS:
            return None
        kind = KINDS.get(pdu.kind)
        if kind is None or pdu.context_engine_id != self.engine_id or pdu.context_name != b"" \
                or (kind != responder_module.BULK and (pdu.error_status or pdu.error_index)):
            return None
        return message, keys, Requester(USM, name, 3, b"", address_text(address)), kind, pdu

    def _to_pysnmp(self, message: usm.Message, address, what: str, counter: str | None):
        """HANDOFF within the budget of pysnmp's time, charged by the message's
        size (and, once pysnmp is done, `handed_back`, by its time); else a
        counted, audited drop. A plaintext scoped PDU goes only if the strict
        reader takes it, and is read only once the budget let it go."""
        host = _host(address)
        if not self.budget.take(host, budget.estimate(len(message.whole))):
            return self._drop("over budget", message.user, address, "v3",
                              f"{what}; over the budget of pysnmp's time", counter)
        if not message.flags & PRIV_FLAG:
            try:
                usm.parse_scoped(message.data)
            except ber.Malformed as error:
                return self._drop("malformed", message.user, address, "v3", f"malformed scoped PDU: {error}",
                                  PARSE_ERRS)
        self.charged = (host, budget.estimate(len(message.whole)))
        self.counters.sync()
        return HANDOFF

    def handed_back(self, seconds: float) -> None:
        """pysnmp took `seconds` over the message `screen` last handed it:
        charge what it took beyond the estimate to its host and overall."""
        if self.charged is not None:
            host, estimated = self.charged
            self.charged = None
            self.budget.charge(host, seconds - estimated)

    def _report(self, message: usm.Message, address, what: str, counter: str) -> bytes | None:
        """RFC 3414 3.2 refusals of a message that cannot be authenticated
        (unknown user, too low a security level, wrong digest): counted in
        `counter`, audited, and answered with the Report pysnmp's USM sends
        (request-id 0, the agent's engine ID, boots and time, the user's name
        echoed, msgFlags as pysnmp sets them), if the message asks for one,
        within the budget of Reports; built from the header alone."""
        self._drop(what, message.user, address, "v3", what, counter)
        if not message.flags & usm.REPORTABLE:
            return None  # RFC 3412 7.1 3b
        if not self.reports.count(_host(address)):
            return None
        return usm.report(message.msg_id, self.max_size, REPORTABLE_IF_AUTH if message.flags & usm.AUTH else 0,
                          self.engine_id, self.boots, self.engine_time(), message.user, 0, self.engine_id, b"",
                          ARCS[counter] + (0,), self.counters.value(counter))

    def _discovery(self, message: usm.Message, address) -> bytes | None:
        """Engine ID discovery (RFC 3414 4): usmStatsUnknownEngineIDs, in a
        Report carrying the request's request-id and context, as pysnmp's.
        Managers discover with an empty varbind list: a plaintext scoped PDU
        of up to DISCOVERY_MAX octets is read (strictly, as pysnmp would
        have), a longer one is dropped unread. Discovery is not a refusal:
        counted, not audited (pysnmp's path did not audit it either)."""
        head = None
        if not message.flags & PRIV_FLAG:
            if len(message.data) > DISCOVERY_MAX:
                self.counters.count(IN_PKTS, UNKNOWN_ENGINES)
                self.refusals.add("discovery too big", message.user, address, "v3",
                                  f"engine ID discovery with a scoped PDU over {DISCOVERY_MAX} octets: not read")
                return None
            try:
                head = usm.parse_scoped(message.data)
            except ber.Malformed as error:
                return self._drop("malformed", message.user, address, "v3", f"malformed scoped PDU: {error}",
                                  PARSE_ERRS)
        self.counters.count(IN_PKTS, UNKNOWN_ENGINES)
        if head is None or not message.flags & usm.REPORTABLE:
            return None  # RFC 3412 7.1 3b; an enciphered one pysnmp does not answer either
        if head.kind not in CONFIRMED or not self.reports.count(_host(address)):
            return None
        return usm.report(message.msg_id, self.max_size, message.flags & usm.AUTH and REPORTABLE_IF_AUTH,
                          self.engine_id, self.boots, self.engine_time(), message.user, head.request_id,
                          head.context_engine_id or self.engine_id, head.context_name, ARCS[UNKNOWN_ENGINES] + (0,),
                          self.counters.value(UNKNOWN_ENGINES))

    def _drop(self, kind: str, user: str | bytes, address, version: str, reason: str,
              counter: str | None = None) -> None:
        self.counters.count(IN_PKTS)
        if counter:
            self.counters.count(counter)
        self.refusals.add(kind, user, address, version, reason)
        return None

    def pysnmp_failed(self, error: Exception, address) -> None:
        """pysnmp raised on a datagram (it counted it in snmpInPkts already)."""
        self.counters.count(PARSE_ERRS)
        self.refusals.add("pysnmp failure", "?", address, "?",
                          f"pysnmp could not process it: {type(error).__name__}")

    def respond(self, message: usm.Message, keys: usm.Keys, who: Requester, kind, pdu: usm.Pdu) -> bytes:
        """Carry out the request (once) and seal its response."""
        self.counters.count(IN_PKTS)
        self.counters.sync()
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


def _host(address) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _framed(scoped: bytes) -> bool:
    """Whether deciphered octets are one SEQUENCE as long as they are: the
    scoped PDU of the right key, or garbage with odds of 1 in 2**16 or so."""
    try:
        tag, _, stop = ber.read(scoped, 0, len(scoped))
    except ber.Malformed:
        return False
    return tag == ber.SEQUENCE and stop == len(scoped)


DRAIN = 64  # datagrams read per wakeup of the loop, at most


def transport(base: type, fast_path: FastPath) -> type:
    """pysnmp's UDP transport class `base`, with `fast_path` in front of its
    receive. Each wakeup reads what the socket holds (up to DRAIN datagrams)
    and screens it at once: under a flood, one selector round per datagram
    cost as much as refusing it."""

    class FastTransport(base):
        _sock = None

        def open_server_mode(self, iface=None, sock=None):
            self._sock = sock
            return super().open_server_mode(iface, sock=sock)

        def datagram_received(self, datagram, transportAddress):
            sock = self._sock
            if sock is None:
                self._fast(datagram, transportAddress)
                return
            batch = [(datagram, transportAddress)]
            for _ in range(DRAIN - 1):
                try:
                    batch.append(sock.recvfrom(65536))
                except OSError:  # nothing more to read now (or an ICMP error queued on the socket)
                    break
            # what names this engine goes first: a flood ahead of a request
            # in the socket must not delay its answer by the flood's cost
            engine_id = fast_path.engine_id
            later = []
            for item in batch:
                if engine_id in item[0][:128]:
                    self._fast(*item)
                else:
                    later.append(item)
            for item in later:
                self._fast(*item)

        def _fast(self, datagram, address) -> None:
            try:
                screened = fast_path.screen(datagram, address)
            except Exception as error:  # a fault of ours: pysnmp still answers, within its budget
                fast_path.refusals.add("fast path fault", "?", address, "?",
                                       f"the fast path failed on it: {type(error).__name__}: {error}")
                cost = budget.estimate(len(datagram))
                screened = HANDOFF if fast_path.budget.take(_host(address), cost) else None
                fast_path.charged = (_host(address), cost) if screened is HANDOFF else None
            if screened is HANDOFF:
                started = time.perf_counter()
                try:
                    self._callback_function(self, address, datagram)
                except Exception as error:  # input pysnmp chokes on: a counted drop, never a traceback
                    fast_path.pysnmp_failed(error, address)
                finally:
                    fast_path.handed_back(time.perf_counter() - started)
                return
            if screened is None:
                return
            if isinstance(screened, bytes):  # a Report made from the header
                try:
                    self.transport.sendto(screened, address)
                except OSError:
                    pass  # an unreachable requester: as lost as any datagram
                return
            try:
                self.transport.sendto(fast_path.respond(*screened), address)
            except Exception:
                log.exception("SNMP fast path could not answer a request it carried out")

    return FastTransport
