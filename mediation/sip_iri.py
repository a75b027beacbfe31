"""The SIP half of the MD's IRI function, as one object (issue 15).

Why: the IRI function dispatches each signalling copy by protocol; for SIP
it needs exactly one call in and one answer out. This composes the three
pure steps, copied IP packet -> whole SIP payloads (sip_transport) -> parsed
message (sip_parse) -> tap changes and IRI (sip_calls), and counts what it
could not read, so the dispatcher holds no SIP logic and nothing of a
non-target's call is kept past the call machine's decision.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mediation.sip_calls import SipCalls, SipTarget, Update
from mediation.sip_parse import SipError, parse
from mediation.sip_transport import SignallingStreams

log = logging.getLogger("p4tap.md")


@dataclass
class SipIriFunction:
    """Signalling copies in; media tap changes and IRI records out."""

    streams: SignallingStreams = field(default_factory=SignallingStreams)
    calls: SipCalls = field(default_factory=SipCalls)
    not_sip: int = 0      # whole payloads that were not SIP (a signalling tap that also copies media)
    messages: int = 0     # SIP messages parsed
    discarded: int = 0    # of them, no target's call's: dropped, nothing kept

    def feed(self, ip_packet: bytes, targets: list[SipTarget], now: float) -> Update:
        """What one copied IP packet (from its first header byte) changes."""
        update = Update()
        for payload in self.streams.feed(ip_packet, now):
            try:
                msg = parse(payload.data)
            except SipError as exc:
                self.not_sip += 1
                log.debug("signalling copy from %s:%d not used: %s", payload.src, payload.sport, exc)
                continue
            self.messages += 1
            step = self.calls.handle(msg, targets, now)
            if msg.call_id not in self.calls.calls and msg.call_id not in self.calls.ended:
                self.discarded += 1
            update.changes += step.changes
            update.iri += step.iri
        return update

    def expire(self, now: float) -> Update:
        """Call from the MD's tick (every second or so): calls whose BYE never
        came end, and reassembly buffers past their time are dropped."""
        self.streams.expire(now)
        return self.calls.expire(now)

    def drop_target(self, cccid: int, now: float) -> Update:
        return self.calls.drop_target(cccid, now)

    def status(self) -> dict[str, int]:
        """For `p4tap md status`."""
        return {"sip_calls": len(self.calls.calls), "sip_media_taps": len(self.calls.installed),
                "sip_not_sip": self.not_sip, "sip_dropped_packets": self.streams.dropped}
