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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from mediation.derived_taps import DerivedTaps, prefix_filters
from mediation.identity_taps import PREFIX, IdentityTaps
from mediation.iri import IriRecord
from mediation.radius_iri import IdentityTarget, RadiusEvent, decode, targets_of

log = logging.getLogger("p4tap.md")
IRI_KIND = {"start": "session-start", "interim": "session-update", "stop": "session-stop", "accept": "access-accept"}


def udp_payload(packet: bytes) -> tuple[str, bytes] | None:
    """(source address, UDP payload) of an IP packet, or None."""
    if not packet or packet[0] >> 4 not in (4, 6):
        return None
    try:
        ip = IP(packet) if packet[0] >> 4 == 4 else IPv6(packet)
        if UDP not in ip:
            return None
        return ip.src, bytes(ip[UDP].payload)
    except Exception:  # scapy raises struct.error and others on a truncated packet: not RADIUS either
        return None


class RadiusHandler:
    protocol = "radius"

    def __init__(self, targets: Sequence[IdentityTarget], taps: DerivedTaps,
                 emit: Callable[[IriRecord], None]) -> None:
        self.targets = list(targets)
        self.taps = taps
        self.emit = emit
        self.state = IdentityTaps()
        self.messages = 0
        self.not_radius = 0
        self.discarded = 0  # no target's: dropped, only counted
        self.past_warrant = 0
        self.reassigned = 0  # target sessions ended because another subscriber was given their address
        self._lock = threading.Lock()

    def handle(self, stamp: float, packet: bytes) -> None:
        found = udp_payload(packet)
        event = decode(found[1]) if found else None
        if event is None:
            self.not_radius += 1
            return
        self.messages += 1
        targets = targets_of(event, self.targets)
        if not targets:
            self.discarded += 1
            if event.kind != "stop" and event.addresses():
                self._reassigned(event.addresses(), stamp)
            return
        for target in targets:
            self._follow(target, event, found[0], stamp)

    def _follow(self, target: IdentityTarget, event: RadiusEvent, nas: str, stamp: float) -> None:
        """One warrant's view of a message that names its target: its session's tap part, its IRI."""
        if target.until is not None and target.until <= datetime.now(timezone.utc):
            self.past_warrant += 1
            with self._lock:
                known = self.state.forget(target.cccid)
            # and any RADIUS part this process did not make (kept across a restart): nothing past the end
            kept = tuple(k for k in self.taps.summary().get(str(target.cccid), {}).get("parts", {})
                         if k.startswith(PREFIX))
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

    def _reassigned(self, addresses: tuple[str, ...], stamp: float) -> None:
        """A non-target now holds `addresses` (the message itself is only compared, never kept): a
        target's session still tapped there lost its Stop and ends here (identity_taps.reassigned)."""
        with self._lock:
            ended = self.state.reassigned(addresses)
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
        return {"targets": targets, "messages": self.messages, "discarded_non_target": self.discarded,
                "not_radius": self.not_radius, "past_warrant": self.past_warrant,
                "ended_by_reassignment": self.reassigned}
