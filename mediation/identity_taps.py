"""Session -> content tap state machine for identity targets (issue 15).

Why pure: the IRI function feeds it decoded RADIUS events; it answers with
the tap changes to make (provision the subscriber's Framed-IP-Address in both
directions under the warrant's CCCID, move it on a new address, remove it on
Stop), so the keeper that speaks SNMPv3 applies them and the logic is tested
without a switch. Non-targets never reach it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mediation.radius_iri import IdentityTarget, RadiusEvent


@dataclass(frozen=True)
class TapChange:
    """One change for the keeper: provision or remove CCCID's tap on address."""

    op: str            # "provision" or "remove"
    cccid: int
    address: str


@dataclass
class IdentityTaps:
    """The address each target's CCCID is tapped on now."""

    current: dict[int, str] = field(default_factory=dict)

    def apply(self, target: IdentityTarget, event: RadiusEvent) -> list[TapChange]:
        held = self.current.get(target.cccid)
        if event.kind == "stop":
            if held is None:
                return []
            del self.current[target.cccid]
            return [TapChange("remove", target.cccid, held)]
        if event.framed_ip is None or event.framed_ip == held:
            return []
        changes = [TapChange("remove", target.cccid, held)] if held else []
        self.current[target.cccid] = event.framed_ip
        return changes + [TapChange("provision", target.cccid, event.framed_ip)]
