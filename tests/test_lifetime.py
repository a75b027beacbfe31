"""The expiry schedule the lifetime timer reads instead of the whole store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from controller.lifetime import ExpirySchedule

T0 = datetime(2031, 1, 1, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_due_and_next_follow_replacements_and_removals():
    schedule = ExpirySchedule()
    schedule.reset([(1, at(10)), (2, at(5)), (3, None)])
    assert schedule.next() == at(5) and schedule.due(at(4)) == []
    schedule.set(2, at(20))  # a later timeout replaces the earlier one
    assert schedule.next() == at(10)
    schedule.set(4, at(1))
    assert schedule.due(at(10)) == [4, 1]
    schedule.discard(4)
    schedule.discard(1)
    assert schedule.next() == at(20) and schedule.due(at(19)) == []
    schedule.set(2, None)  # no timeout: never due
    assert schedule.next() is None and schedule.due(at(10**6)) == []
