"""Scalar objects: cTap2MediationNewIndex, the two capability objects, and the
debug group's age and size. All read-only.

Capabilities advertise only what p4tap carries out:
- cTap2MediationCapabilities: ipV4SrcInterface, ipV6SrcInterface (the
  mediation's SrcInterface picks the port copies leave by) and udp (the only
  transport). Not rtpNack, tcp, sctp, rtp.
- citapStreamCapabilities: interface, ipV4, ipV6, l4Port, dscp. Not voip
  (Interface -2 is refused), and not tapEnable: that bit says streams with
  InterceptEnable false pre-screen packets, and p4tap installs nothing for
  them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mib_bridge import oids
from mib_bridge.oids import OID
from mib_bridge.syntax import Bits, Integer, Syntax
from mib_bridge.table import NO_SUCH_INSTANCE, NO_SUCH_OBJECT

MEDIATION_CAPABILITIES = oids.bits(["ipV4SrcInterface", "ipV6SrcInterface", "udp"], oids.MEDIATION_CAP_BITS)
IP_STREAM_CAPABILITIES = oids.bits(["interface", "ipV4", "ipV6", "l4Port", "dscp"], oids.IP_STREAM_CAP_BITS)


@dataclass(frozen=True)
class Scalar:
    """One read-only scalar at `root`; its instance is root.0."""

    root: OID
    name: str
    syntax: Syntax
    read: Callable[[], Any]

    @property
    def instance(self) -> OID:
        return self.root + (0,)

    def get(self, oid: OID, context: Any = None) -> Any:
        if oid == self.instance:
            return self.syntax.encode(self.read())
        return NO_SUCH_INSTANCE if oids.within(oid, self.root) else NO_SUCH_OBJECT

    def next(self, oid: OID, context: Any = None) -> tuple[OID, Any] | None:
        if oid < self.instance:
            return self.instance, self.syntax.encode(self.read())
        return None


def tap_scalars(new_index: Callable[[], int], debug_age: Callable[[], int],
                debug_max_entries: Callable[[], int]) -> list[Scalar]:
    positive = Integer(1, 2**31 - 1)
    return [
        Scalar(oids.IP_STREAM_CAPABILITIES, "citapStreamCapabilities", Bits(), lambda: IP_STREAM_CAPABILITIES),
        Scalar(oids.MEDIATION_NEW_INDEX, "cTap2MediationNewIndex", positive, new_index),
        Scalar(oids.MEDIATION_CAPABILITIES, "cTap2MediationCapabilities", Bits(), lambda: MEDIATION_CAPABILITIES),
        Scalar(oids.DEBUG_AGE, "cTap2DebugAge", positive, debug_age),
        Scalar(oids.DEBUG_MAX_ENTRIES, "cTap2DebugMaxEntries", positive, debug_max_entries),
    ]
