"""The IRI function's RADIUS handler: a target's accounting (and
Access-Accept) becomes IRI records and a data tap on each of her sessions.

Each session (its Acct-Session-Id) with a Framed-IP-Address or
Framed-IPv6-Prefix is one part of the warrant's tap, both directions: a
target with two sessions at once (two devices, an IPv4 session and an IPv6
one) has both tapped; a new address moves only that session's part; a Stop
removes only its own part, found from its session id alone; the intercept
goes with the last session (mediation/identity_taps.py decides,
mediation/derived_taps.py carries it to the keeper, one want per message so
the keeper never sees half a change). Each of the target's messages is one
IRI record, with its session id, to the warrant's agencies. A message of
anyone else is decoded, found to be no target's and dropped: only counted,
and compared with the targets' sessions: a non-target given an address a
target's session still holds means that session's Stop was lost, and its
part goes (minimality: that address is someone else's now).

A message larger than the path MTU (an EAP Access-Accept, many attributes,
an IPv6 link of 1280) comes as IP fragments, copied one by one by the
signalling tap (no port in its filters: mediation/radius_config.py); they
are made whole (mediation/ip_reassembly.py, bounded to a RADIUS message's
4096 octets, RFC 2865 §3) before decoding. What is not RADIUS (the server's
other UDP, junk, another protocol) is counted and dropped, never kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from mediation.derived_taps import DerivedTaps, prefix_filters
from mediation.identity_taps import PREFIX, IdentityTaps
from mediation.ip_reassembly import Datagram, Reassembly
from mediation.iri import IriRecord
from mediation.radius_iri import IdentityTarget, RadiusEvent, decode, targets_of

log = logging.getLogger("p4tap.md")
IRI_KIND = {"start": "session-start", "interim": "session-update", "stop": "session-stop", "accept": "access-accept"}


MAX_RADIUS = 4096  # octets of one RADIUS message over UDP (RFC 2865 §3): a larger fragment set is junk
UDP = 17


def udp_payload(datagram: Datagram) -> bytes | None:
    """The UDP payload of a whole datagram, or None if it is no UDP."""
    if datagram.protocol != UDP or len(datagram.payload) < 8:
        return None
    length = int.from_bytes(datagram.payload[4:6], "big")
    return datagram.payload[8:length] if 8 <= length <= len(datagram.payload) else datagram.payload[8:]


class RadiusHandler:
    protocol = "radius"

    def __init__(self, targets: Sequence[IdentityTarget], taps: DerivedTaps,
                 emit: Callable[[IriRecord], None]) -> None:
        self.targets = list(targets)
        self.taps = taps
        self.emit = emit
        self.state = IdentityTaps()
        self.reassembly = Reassembly(max_payload=MAX_RADIUS + 8)  # the copies' fragments, on the IRI thread
        self.messages = 0
        self.not_radius = 0
        self.discarded = 0  # no target's: dropped, only counted
        self.past_warrant = 0
        self.reassigned = 0  # target sessions ended because another subscriber was given their address
        self._lock = threading.Lock()

    def handle(self, stamp: float, packet: bytes) -> None:
        """One copied IP packet: a whole datagram, or a fragment (held until its set is whole)."""
        with self._lock:
            datagram = self.reassembly.feed(packet, stamp)
        if datagram is None:
            return  # a fragment of a set not yet whole, or junk (counted by the reassembly)
        payload = udp_payload(datagram)
        event = decode(payload) if payload is not None else None
        if event is None:
            self.not_radius += 1
            return
        self.messages += 1
        targets = targets_of(event, self.targets)
        if not targets:
            self.discarded += 1
            if event.kind != "stop" and event.addresses():
                self._reassigned(event.addresses(), datagram.src, stamp)
            return
        for target in targets:
            self._follow(target, event, datagram.src, stamp)

    def _follow(self, target: IdentityTarget, event: RadiusEvent, nas: str, stamp: float) -> None:
        """One warrant's view of a message that names its target: its session's tap part, its IRI."""
        if target.until is not None and target.until <= datetime.now(timezone.utc):
            self.past_warrant += 1
            with self._lock:
                known = self.state.forget(target.cccid)
            # and any RADIUS part this process did not make (kept across a restart): nothing past the end
            kept = tuple(k for k in self.taps.keys(target.cccid) if k.startswith(PREFIX))
            if known or kept:
                self.taps.change(target.cccid, {}, tuple(dict.fromkeys(known + kept)), stamp)
            return
        with self._lock:
            change = self.state.apply(target, event, nas, stamp)
            add = {key: (prefix_filters(s.addresses), s.why()) for key, s in change.set.items()}
        if change:  # a start, a move, a stop: one want (or unwant) for all of it, made before broken
            self.taps.change(target.cccid, add, change.drop, stamp, warrant=target)
        self.emit(IriRecord(target.cccid, stamp, self.protocol, IRI_KIND[event.kind], target.identity(),
                            event.addresses() or change.addresses, event.session_id, peer=nas))

    def _reassigned(self, addresses: tuple[str, ...], nas: str, stamp: float) -> None:
        """A non-target now holds `addresses` (the message itself is only compared, never kept): a
        target's session still tapped there lost its Stop and ends here (identity_taps.reassigned)."""
        with self._lock:
            ended = self.state.reassigned(addresses, nas)
        for cccid, keys in ended.items():
            self.reassigned += len(keys)
            log.warning("RADIUS: CCCID %d's session(s) at %s given to another subscriber (their Stop was never "
                        "seen): no longer tapped", cccid, ", ".join(addresses))
            self.taps.change(cccid, {}, keys, stamp)

    def restore(self, parts: dict[int, dict[str, tuple]], stamp: float | None = None) -> None:
        """After a restart of the MD: the sessions its derived taps (restored,
        mediation/derived_state.py) say are live, so that their Stop, a move or
        a Start after an Accept finds them. Each RADIUS part's key names its
        session (mediation/identity_taps.py); its filters' sources are the
        session's addresses."""
        stamp = time.time() if stamp is None else stamp
        with self._lock:
            for target in self.targets:
                for key, filters in parts.get(target.cccid, {}).items():
                    if key.startswith(PREFIX) and filters:
                        addresses = tuple(dict.fromkeys(f.src for f in filters if f.src))
                        self.state.restore(target.cccid, key, addresses, stamp)

    def summary(self) -> dict:
        with self._lock:
            targets = [{"cccid": t.cccid, "identity": t.identity(), **self.state.summary(t.cccid)}
                       for t in self.targets]
            counts = self.reassembly.summary()
        return {"targets": targets, "messages": self.messages, "discarded_non_target": self.discarded,
                "not_radius": self.not_radius + counts["not_ip"], "past_warrant": self.past_warrant,
                "reassembled": counts["reassembled"], "fragment_sets_held": counts["fragment_sets"],
                "fragment_sets_given_up": sum(counts["fragment_sets_given_up"].values()),
                "ended_by_reassignment": self.reassigned}
