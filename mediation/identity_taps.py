"""Session -> content tap state machine for identity targets (issue 15).

Why pure: the IRI function feeds it decoded RADIUS events; it answers with
the tap changes to make (provision the subscriber's Framed-IP-Address and
Framed-IPv6-Prefix in both directions under the warrant's CCCID, move them
on a new address, remove them on Stop), so the keeper that speaks SNMPv3
applies them and the logic is tested without a switch. Non-targets never
reach it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mediation.radius_iri import IdentityTarget, RadiusEvent


@dataclass(frozen=True)
class TapChange:
    """One change for the keeper: provision or remove CCCID's tap on these prefixes."""

    op: str                    # "provision" or "remove"
    cccid: int
    addresses: tuple[str, ...]


@dataclass
class IdentityTaps:
    """The prefixes each target's CCCID is tapped on now."""

    current: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def apply(self, target: IdentityTarget, event: RadiusEvent) -> list[TapChange]:
        held = self.current.get(target.cccid)
        if event.kind == "stop":
            if held is None:
                return []
            del self.current[target.cccid]
            return [TapChange("remove", target.cccid, held)]
        addresses = event.addresses()
        if not addresses or addresses == held:
            return []
        changes = [TapChange("remove", target.cccid, held)] if held else []
        self.current[target.cccid] = addresses
        return changes + [TapChange("provision", target.cccid, addresses)]

    def forget(self, cccid: int) -> tuple[str, ...] | None:
        """The warrant ended: its session is no longer followed."""
        return self.current.pop(cccid, None)
