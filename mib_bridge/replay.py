"""Replays of authenticated SNMPv3 messages inside USM's time window,
refused exactly, at any rate.

Why: RFC 3414's timeliness check accepts a message whose time is within
150 s of the agent's, so a captured authPriv SET could be sent again and
carried out again (a replayed Timeout SET reverted the Timeout; a replayed
provisioning re-created an intercept the MD had just removed, issue 12).
Clients never send the same bytes twice: net-snmp and pysnmp give a
retransmission a new msgID (hence a new digest), and so does
snmpv3.session. So the agent remembers every authenticated message that
could still pass the time check and refuses a second copy.

Why not a sequence window (IPsec, DTLS): USM has no per-sender sequence
number. msgID is per client process, and several processes (`md listen`'s
keeper, `md provision`, net-snmp tools) speak as one user at once, each
with its own msgIDs; a high-water mark over them would refuse good messages.

So the memory is exact, and sized by the window and a maximum rate rather
than by a count that drops the oldest early (issue 26: 200,000 entries
covered 105 s of the window at the agent's 1,900 messages/s, leaving the
MD's last SETs replayable). Per user, messages are kept in buckets by the
engine time they claim (msgAuthoritativeEngineTime, covered by the digest);
a bucket goes when no message of it can pass the time check any more
(claimed time + 150 s behind the agent's clock). Nothing is ever forgotten
early: a user whose memory holds CAPACITY messages (MAX_RATE a second over
the whole window, twice the agent's highest rate) gets further new messages
refused until buckets expire, so no replay is ever let through, and one user
cannot crowd out another. An entry is the digest's first 8 octets as an int
(~70 bytes with the set's slot): ~40 MB for a user at the cap, ~20 MB at the
agent's full rate. Two different messages of a user that claim the same
second share those 64 bits with odds of about 1 in 10**16 per message
(digests are HMAC outputs, not chosen without the key): the newer would be
refused as a replay, and its sender retries with a new msgID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from snmpv3 import usm

#: authenticated messages per second and user the memory holds over the whole
#: window; the agent serves about 1,900 a second (BENCHMARKS.md)
MAX_RATE = 4_000
CAPACITY = MAX_RATE * (usm.TIME_WINDOW + 1)
REPLAY, FULL = "replay", "full"


class Authenticated(Protocol):
    user: bytes
    time: int
    auth_params: bytes


@dataclass
class _UserMemory:
    buckets: dict[int, set[int]] = field(default_factory=dict)  # claimed engine time -> digests
    size: int = 0


class ReplayMemory:
    def __init__(self, window: int = usm.TIME_WINDOW, capacity: int = CAPACITY) -> None:
        self.window, self.capacity = window, capacity
        self._users: dict[bytes, _UserMemory] = {}
        self._now: int | None = None
        self.replays = 0
        self.full = 0  # new messages refused because their user's memory was full

    def refusal(self, message: Authenticated, engine_time: int) -> str | None:
        """None the first time an authenticated message (that passed the time
        check at `engine_time`) is seen, and it is remembered; REPLAY for a
        later copy; FULL if its user's memory is full (refused, not forgotten)."""
        if engine_time != self._now:
            self._expire(engine_time)
        memory = self._users.get(message.user)
        if memory is None:
            memory = self._users[message.user] = _UserMemory()
        key = int.from_bytes(message.auth_params[:8], "big")
        bucket = memory.buckets.get(message.time)
        if bucket is not None and key in bucket:
            self.replays += 1
            return REPLAY
        if memory.size >= self.capacity:
            self.full += 1
            return FULL
        if bucket is None:
            bucket = memory.buckets[message.time] = set()
        bucket.add(key)
        memory.size += 1
        return None

    def first_copy(self, message: Authenticated, engine_time: int) -> bool:
        """Whether `message` is new (and now remembered): `refusal` is None."""
        return self.refusal(message, engine_time) is None

    def _expire(self, engine_time: int) -> None:
        """Forget the buckets of claimed times the time check refuses from now on:
        a message claiming `t` passes it only while the agent's time is <= t + window."""
        self._now = engine_time
        oldest = engine_time - self.window
        for user, memory in list(self._users.items()):
            for claimed in [t for t in memory.buckets if t < oldest]:
                memory.size -= len(memory.buckets.pop(claimed))
            if not memory.buckets:
                del self._users[user]

    def __len__(self) -> int:
        return sum(m.size for m in self._users.values())
