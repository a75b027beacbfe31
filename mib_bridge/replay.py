"""Replays of authenticated SNMPv3 messages inside USM's time window.

Why: RFC 3414's timeliness check accepts a message whose time is within
150 s of the agent's, so a captured authPriv SET could be sent again and
carried out again for up to 150 s (a replayed Timeout SET reverted the
Timeout; a replayed provisioning re-created an intercept the MD had just
removed, issue 12). Clients never send the same bytes twice: net-snmp and
pysnmp give a retransmission a new msgID (hence a new digest), and so does
snmpv3.session. So the agent remembers every authenticated message it saw
while the message could still pass the time check, keyed by (boots, time,
msgID, digest), and refuses a second copy.

Memory: one entry per authenticated message of the last TIME_WINDOW
seconds, at most MAX_ENTRIES; past that the oldest are forgotten early and
`forgotten` counts them (at the MD's full rate, ~1,000 requests/s, that is
150,000 entries, ~25 MB).
"""

from __future__ import annotations

import heapq

from snmpv3 import usm

MAX_ENTRIES = 200_000


class ReplayMemory:
    def __init__(self, window: int = usm.TIME_WINDOW, limit: int = MAX_ENTRIES) -> None:
        self.window, self.limit = window, limit
        self._seen: set[bytes] = set()
        self._expiry: list[tuple[int, bytes]] = []  # (engine time it may be forgotten at, key)
        self.replays = 0
        self.forgotten = 0

    def first_copy(self, message: usm.Message, engine_time: int) -> bool:
        """True the first time an authenticated message is seen; False (and
        counted) for any later copy while it is still inside the window."""
        self._expire(engine_time)
        key = b"%d %d %d " % (message.boots, message.time, message.msg_id) + message.auth_params
        if key in self._seen:
            self.replays += 1
            return False
        if len(self._seen) >= self.limit:
            _, oldest = heapq.heappop(self._expiry)
            self._seen.discard(oldest)
            self.forgotten += 1
        self._seen.add(key)
        heapq.heappush(self._expiry, (message.time + self.window + 1, key))
        return True

    def _expire(self, engine_time: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < engine_time:
            self._seen.discard(heapq.heappop(expiry)[1])

    def __len__(self) -> int:
        return len(self._seen)
