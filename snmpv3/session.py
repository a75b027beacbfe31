"""A command generator's side of SNMPv3 USM authPriv, one request at a time,
without pyasn1's per-message cost (snmpv3.usm): the mediation device's
SETs, GETs and GETBULKs (mediation/snmp_client.py).

It discovers the agent's engine ID, boots and time (RFC 3414 4: an
unauthenticated request, answered with a Report), keeps the agent's clock
from then on, and after a signed notInTimeWindow Report (the agent
restarted with its engine ID and a new boot count, or our clock is off) or
an unauthenticated Report (unknownEngineID, or unknownUserName for keys
localized to an engine that is gone) learns again and sends the request
once more: a Report means the request was not carried out. A Response must
carry the agent's digest, decipher with the user's key and answer the
request's own ids; anything else is ignored until the timeout, as pysnmp
does.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from snmpv3 import ber, usm

MAX_SIZE = 65507
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
REPORTS = {  # usmStats* (RFC 3414) as pysnmp's error indications word them
    1: "Unsupported SNMP security level",
    2: "SNMP message timing parameters not in windows of trust",
    3: "Unknown USM user",
    4: "Unknown SNMP engine ID encountered",
    5: "Wrong SNMP PDU digest",
    6: "Decryption error",
}
NOT_IN_TIME_WINDOW, UNKNOWN_ENGINE_ID = 2, 4


class SessionError(Exception):
    """No valid answer: a timeout, or a Report naming what the agent refused."""


class Unsupported(SessionError):
    """Protocols this session does not speak (HMAC-MD5-96, HMAC-SHA-96 and HMAC-SHA-2 with AES only)."""


@dataclass
class _Flight:
    """A sequence of requests in `Session.pipeline`, and its request on the wire."""

    sequence: int
    step: int = 0
    msg_id: int = 0
    request_id: int = 0
    scoped: bytes = b""
    msg_ids: list[int] = field(default_factory=list)  # of every copy sent
    deadline: float = 0.0
    tries: int = 0
    relearned: bool = False


class Session:
    def __init__(self, host: str, port: int, user: str, auth_protocol: tuple, auth_key: str,
                 priv_protocol: tuple, priv_key: str, timeout: float = 2.0, retries: int = 1) -> None:
        self.user = user.encode()
        self.protocols = (tuple(auth_protocol), auth_key, tuple(priv_protocol), priv_key)
        self.timeout, self.retries = timeout, retries
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect((host, port))
        self.engine_id: bytes | None = None
        self.keys: usm.Keys | None = None
        self.boots = 0
        self._clock = (0, 0.0)  # (agent's time, our monotonic time when it said so)
        self._next_id = int.from_bytes(os.urandom(3), "big")

    def close(self) -> None:
        self.sock.close()

    # -- engine discovery and clock --------------------------------------------------

    def discover(self) -> None:
        scoped = usm.scoped_pdu(b"", b"", usm.GET, self._id(), 0, 0, ber.encode_varbinds([]))
        message, pdu, _ = self._exchange(lambda msg_id: usm.plain(msg_id, MAX_SIZE, usm.REPORTABLE, scoped), None)
        if pdu.kind != usm.REPORT or not message.engine_id:
            raise SessionError("the agent did not say its engine ID")
        keys = usm.Keys.derive(self.user, self.protocols[0], self.protocols[1], self.protocols[2],
                               self.protocols[3], message.engine_id)
        if keys is None:
            raise Unsupported("only HMAC (MD5, SHA-1, SHA-2) authentication with AES privacy take the fast path")
        self.engine_id, self.keys = message.engine_id, keys
        self._learn(message)

    def _learn(self, message: usm.Message) -> None:
        self.boots = message.boots
        self._clock = (message.time, time.monotonic())

    def engine_time(self) -> int:
        said, at = self._clock
        return min(said + int(time.monotonic() - at), 2**31 - 1)

    def _id(self) -> int:
        self._next_id = (self._next_id + 1) % 2**31
        return self._next_id

    # -- requests --------------------------------------------------------------------

    def request(self, kind: int, varbinds: Sequence[tuple[Sequence[int], Any]], answer: bool = True,
                max_repetitions: int = 0) -> tuple[int, int, list[tuple[tuple[int, ...], Any]]]:
        """(error status, error index, varbinds) of the agent's Response; its
        varbinds left undecoded (empty) where the caller has no use for them.
        A GETBULK (usm.BULK) has no non-repeaters and `max_repetitions`.
        A Report means the request was not carried out: after an
        unauthenticated one (a new engine, or keys localized to the old one)
        the engine is discovered again, after a signed notInTimeWindow one
        the clock is set again, and the request is sent once more."""
        body = ber.encode_varbinds(varbinds)
        for attempt in (1, 2):
            if self.keys is None:
                self.discover()
            request_id = self._id()
            scoped = usm.scoped_pdu(self.engine_id, b"", kind, request_id, 0, max_repetitions, body)
            message, pdu, signed = self._exchange(lambda msg_id: self._seal(msg_id, scoped), request_id, answer)
            if pdu.kind == usm.REPORT:
                report = self._report(pdu)
                if attempt == 1 and (not signed or report == NOT_IN_TIME_WINDOW):
                    if not signed:
                        self.keys = None
                    continue
                raise SessionError(REPORTS.get(report, "Report from the agent"))
            return pdu.error_status, pdu.error_index, pdu.varbinds
        raise AssertionError("not reached: the second attempt returns or raises")

    def pipeline(self, sequences: Sequence[Sequence[tuple[int, Sequence[tuple[Sequence[int], Any]]]]],
                 window: int, done: Callable[[int, int], None] | None = None
                 ) -> list[SessionError | tuple[int, int, int] | None]:
        """Run each sequence's requests in order, up to `window` sequences at
        once (the agent answers one request at a time either way; this hides
        the round trips and our own work behind its). Per sequence: None when
        every request succeeded, (position, error status, error index) of the
        first the agent refused, or the SessionError that ended it. A refused
        request ends its sequence; the others go on. `done(sequence, step)`
        hears of every request that succeeded."""
        if self.keys is None:
            self.discover()
        results: list[SessionError | tuple[int, int, int] | None] = [None] * len(sequences)
        flying: dict[int, _Flight] = {}  # by msgID
        waiting = iter(range(len(sequences)))

        def send(flight: _Flight, retry: bool = False) -> None:
            """The flight's request, or (`retry`) the same request again under a
            new msgID: the agent refuses a second copy of a message as a replay."""
            if not retry:
                kind, varbinds = sequences[flight.sequence][flight.step]
                flight.request_id, flight.tries = self._id(), self.retries
                flight.scoped = usm.scoped_pdu(self.engine_id, b"", kind, flight.request_id, 0, 0,
                                               ber.encode_varbinds(varbinds))
                for old in flight.msg_ids:
                    flying.pop(old, None)
                flight.msg_ids = []
            flight.msg_id = self._id()
            flight.msg_ids.append(flight.msg_id)  # an answer to an earlier copy is still the answer
            flying[flight.msg_id] = flight
            self.sock.send(self._seal(flight.msg_id, flight.scoped))
            flight.deadline = time.monotonic() + self.timeout

        def land(flight: _Flight) -> None:
            for old in flight.msg_ids:
                flying.pop(old, None)

        def end(flight: _Flight, result) -> None:
            results[flight.sequence] = result
            fill()

        def fill() -> None:
            while len({id(f) for f in flying.values()}) < window:
                sequence = next(waiting, None)
                if sequence is None:
                    return
                if sequences[sequence]:
                    send(_Flight(sequence))

        fill()
        while flying:
            now = time.monotonic()
            for flight in {id(f): f for f in flying.values()}.values():
                if flight.deadline > now:
                    continue
                if flight.tries > 0:  # sent again under a new msgID, as pysnmp's and net-snmp's retries are
                    flight.tries -= 1
                    send(flight, retry=True)
                else:
                    land(flight)
                    end(flight, SessionError("No SNMP response received before timeout"))
            if not flying:
                break
            self.sock.settimeout(max(0.001, min(f.deadline for f in flying.values()) - time.monotonic()))
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                continue
            got = self._answer(data, {m: f.request_id for m, f in flying.items()}, varbinds=False)
            if got is None:
                continue
            message, pdu, signed = got
            flight = flying[message.msg_id]
            land(flight)
            if pdu.kind == usm.REPORT:
                report = self._report(pdu)
                if signed and report == NOT_IN_TIME_WINDOW and not flight.relearned:
                    flight.relearned = True
                    send(flight)  # the same step again, in the agent's time
                else:
                    end(flight, SessionError(REPORTS.get(report, "Report from the agent")))
            elif pdu.error_status:
                end(flight, (flight.step, pdu.error_status, pdu.error_index))
            else:
                if done is not None:
                    done(flight.sequence, flight.step)
                if flight.step + 1 < len(sequences[flight.sequence]):
                    flight.step, flight.relearned = flight.step + 1, False
                    send(flight)
                else:
                    end(flight, None)
        return results

    @staticmethod
    def _report(pdu: usm.Pdu) -> int:
        for oid, _ in pdu.varbinds:
            if oid[:len(USM_STATS)] == USM_STATS and len(oid) == len(USM_STATS) + 2:
                return oid[len(USM_STATS)]
        return 0

    def _answer(self, data: bytes, wanted: dict[int, int | None], varbinds: bool = True
                ) -> tuple[usm.Message, usm.Pdu, bool] | None:
        """(message, PDU, signed) if `data` is the agent's answer to one of the
        requests `wanted` (msgID -> request-id): its Response (authPriv, our
        keys, that request-id) or a Report (signed with our keys, or
        unauthenticated as discovery and USM errors are); None for anything
        else, which is then ignored as pysnmp does."""
        try:
            message = usm.parse(data)
            if message.msg_id not in wanted:
                return None
            request_id = wanted[message.msg_id]
            security = message.flags & usm.AUTH_PRIV
            if security & usm.AUTH:
                if self.keys is None or message.engine_id != self.engine_id:
                    return None
                if security == usm.AUTH_PRIV:
                    scoped = usm.open_scoped(message, self.keys)
                    pdu = usm.parse_scoped(scoped, varbinds)
                    if pdu.kind == usm.REPORT and not varbinds:  # which report it is is in its varbinds
                        pdu = usm.parse_scoped(scoped)
                else:  # authNoPriv: how USM sends its notInTimeWindow Report (RFC 3414 3.2.7a)
                    usm.authenticate(message, self.keys)
                    pdu = usm.parse_scoped(message.data)
                    if pdu.kind != usm.REPORT:
                        return None
                signed = True
            elif security:
                return None
            else:
                pdu, signed = usm.parse_scoped(message.data), False
                if pdu.kind != usm.REPORT:
                    return None
        except (ber.Malformed, usm.Rejected):
            return None
        if pdu.kind == usm.REPORT:
            if signed:
                self._learn(message)
            return message, pdu, signed
        if pdu.kind != usm.RESPONSE or request_id is None or pdu.request_id != request_id:
            return None
        self._learn(message)
        return message, pdu, signed

    def _seal(self, msg_id: int, scoped: bytes) -> bytes:
        return usm.seal(self.keys, msg_id, MAX_SIZE, usm.AUTH_PRIV | usm.REPORTABLE, self.engine_id, self.boots,
                        self.engine_time(), scoped)

    def _exchange(self, make: Callable[[int], bytes], request_id: int | None, varbinds: bool = True
                  ) -> tuple[usm.Message, usm.Pdu, bool]:
        """Send `make(msgID)`, and wait for the agent's answer (`_answer`);
        send it again up to `retries` times, each time under a new msgID (the
        agent refuses a second copy of a message as a replay, and net-snmp's
        and pysnmp's retries do the same); an answer to any copy will do."""
        wanted: dict[int, int | None] = {}
        for _ in range(self.retries + 1):
            msg_id = self._id()
            wanted[msg_id] = request_id
            self.sock.send(make(msg_id))
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(65535)
                except (socket.timeout, ConnectionRefusedError):
                    continue
                got = self._answer(data, wanted, varbinds)
                if got is not None:
                    return got
        raise SessionError("No SNMP response received before timeout")
