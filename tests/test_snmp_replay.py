"""The replay memory (mib_bridge/replay.py) at and beyond the agent's highest
rate (issue 26, part 2), in process: fed messages as the fast path feeds it
(each authenticated and inside the time window), it refuses every replay
over the whole 150 s window however many messages came in between, never
forgets one early, and refuses new messages of a user whose memory is full
rather than forget. The over-the-wire check is in tests/test_snmp_hostile.py."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mib_bridge import replay
from mib_bridge.replay import ReplayMemory
from snmpv3 import usm

START = 10_000  # the agent's engine time when the test begins
FULL_RATE = 2_000  # authenticated messages a second: above the ~1,900 the agent serves


@dataclass(frozen=True)
class Sent:
    """What the memory reads of an authenticated message."""

    user: bytes
    time: int
    auth_params: bytes
    boots: int = 1
    msg_id: int = 0


def messages(rng: random.Random, user: bytes, claimed: int, n: int) -> list[Sent]:
    return [Sent(user, claimed, rng.randbytes(24), msg_id=rng.randrange(2**31)) for _ in range(n)]


def test_every_replay_inside_the_window_is_refused_at_full_rate() -> None:
    """302,000 messages over 151 s (more than the 200,000 the old memory held):
    each second's replays of what was sent 1 s, 75 s and 150 s before are all refused."""
    rng = random.Random(26)
    memory = ReplayMemory()
    sent: dict[int, list[Sent]] = {}
    for second in range(usm.TIME_WINDOW + 1):
        now = START + second
        sent[now] = messages(rng, b"md1", now, FULL_RATE)
        assert all(memory.first_copy(m, now) for m in sent[now])
        for back in (1, 75, usm.TIME_WINDOW):
            if now - back in sent:
                assert not any(memory.first_copy(m, now) for m in sent[now - back][:50])
    now = START + usm.TIME_WINDOW
    assert len(memory) == FULL_RATE * (usm.TIME_WINDOW + 1) > 200_000
    refused = sum(not memory.first_copy(m, now) for batch in sent.values() for m in batch)
    assert refused == FULL_RATE * (usm.TIME_WINDOW + 1)  # every one, the oldest included
    assert memory.full == 0


def test_clients_whose_clock_claims_the_edges_of_the_window_are_remembered_while_they_pass() -> None:
    """A message claiming t passes the time check while the agent's time is in
    [t - 150, t + 150]: it is remembered for all of that, and no longer."""
    rng = random.Random(3)
    memory = ReplayMemory()
    ahead = messages(rng, b"md1", START + usm.TIME_WINDOW, 10)  # a client 150 s ahead
    assert all(memory.first_copy(m, START) for m in ahead)
    for now in (START + 1, START + usm.TIME_WINDOW, START + 2 * usm.TIME_WINDOW):
        assert not any(memory.first_copy(m, now) for m in ahead)
    memory.first_copy(messages(rng, b"md1", START + 2 * usm.TIME_WINDOW + 1, 1)[0], START + 2 * usm.TIME_WINDOW + 1)
    assert len(memory) == 1  # the bucket of `ahead` went when the time check started refusing it


def test_a_user_at_the_cap_gets_new_messages_refused_and_no_old_one_forgotten() -> None:
    rng = random.Random(4)
    memory = ReplayMemory(capacity=1_000)
    first = messages(rng, b"md1", START, 1_000)
    assert all(memory.first_copy(m, START) for m in first)
    extra = messages(rng, b"md1", START + 1, 5)
    assert [memory.refusal(m, START + 1) for m in extra] == [replay.FULL] * 5
    assert [memory.refusal(m, START + 1) for m in first[:3]] == [replay.REPLAY] * 3  # still remembered
    other = messages(rng, b"ops", START + 1, 5)  # another user is not crowded out
    assert all(memory.first_copy(m, START + 1) for m in other)
    later = START + usm.TIME_WINDOW + 1  # `first` can no longer pass the time check: its bucket goes
    assert all(memory.first_copy(m, later) for m in extra)
    assert memory.full == 5


def test_the_default_cap_holds_the_whole_window_at_twice_the_agents_rate() -> None:
    assert replay.CAPACITY >= 2 * 1_900 * (usm.TIME_WINDOW + 1)
