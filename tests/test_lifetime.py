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


def test_a_last_tick_never_lets_a_copy_out_at_or_after_its_deadline():
    """Whenever within the probe's window the switch read its tick, and
    wherever within that tick its clock stood, the clock at the deadline is
    already past the last tick (the data plane's `last - now` is negative),
    and at most one tick plus the round trip earlier it was not yet."""
    from controller.clock import TICK_SPACE, SwitchClock

    tick_ns = 1_024_000
    rtt = timedelta(milliseconds=3)
    for start_tick in (0, 12_345, TICK_SPACE - 2):  # and across the wrap
        clock = SwitchClock(start_tick, tick_ns, read_by=at(0), round_trip=rtt)
        for deadline in (at(0.5), at(7.3337), at(3600)):
            last = clock.last_tick(deadline)
            for read_at in (at(0) - rtt, at(0)):  # when, within the probe, the tick was read
                for phase_ns in (0, tick_ns - 1):  # where within that tick the switch clock stood
                    def tick_at(when: datetime) -> int:
                        ns = (when - read_at) // timedelta(microseconds=1) * 1000 + phase_ns
                        return (start_tick + ns // tick_ns) % TICK_SPACE

                    left = (last - tick_at(deadline)) % TICK_SPACE
                    assert left >= TICK_SPACE // 2, "a copy at the deadline would still leave"
                    early = deadline - clock.resolution - timedelta(microseconds=tick_ns / 1000)
                    assert (last - tick_at(early)) % TICK_SPACE < TICK_SPACE // 2, "stopped too early"
