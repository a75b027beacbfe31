"""A provisioning request checked before anything is planned or recorded.

What an MD asks for is refused whole, with a one-line reason and nothing
changed, when it cannot be right whatever the switches say: a switch the
controller does not have, an intercept given twice, a mediation without a
timeout (it would never end, against RFC 3924's lifetime) or already past
it, a stream of another mediation. Kept apart from the controller
(controller.service) so these rules read as a list; what a switch can hold
is its own check, made when the change is staged (controller.capacity).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from controller.model import InterceptError, Mediation, Stream

__all__ = ["check_new"]


def check_new(intercepts: Sequence[tuple[Mediation, list[Stream]]], targets: Sequence[str],
              switches: Collection[str], now: datetime) -> None:
    """InterceptError saying what is wrong with the request, if anything."""
    unknown = [t for t in targets if t not in switches]
    if unknown:
        raise InterceptError(f"unknown switch {', '.join(unknown)}")
    seen: set[int] = set()
    for mediation, streams in intercepts:
        if mediation.content_id in seen:
            raise InterceptError(f"intercept {mediation.content_id} given twice")
        seen.add(mediation.content_id)
        if mediation.timeout is None:
            raise InterceptError(f"mediation {mediation.content_id}: no cTap2MediationTimeout given")
        if mediation.expired(now):
            raise InterceptError(f"mediation {mediation.content_id}: timeout {mediation.timeout} has passed")
        for stream in streams:
            if stream.content_id != mediation.content_id:
                raise InterceptError(f"stream {stream.key} does not belong to mediation {mediation.content_id}")
