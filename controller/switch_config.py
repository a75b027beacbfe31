"""One switch as the controller is configured to drive it.

Kept apart from the switch's running state (controller.managed_switch) so
that the config file's reader (controller.config) and every caller that only
describes switches need nothing of planning or P4Runtime; the defaults here
are the ones a config file that says nothing gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from controller.clock import LEASE
from controller.switch import TlsConfig
from controller.topology import SwitchTopology

__all__ = ["SwitchConfig"]


@dataclass
class SwitchConfig:
    name: str
    address: str
    topology: SwitchTopology
    device_id: int = 0
    election_id: tuple[int, int] = (0, 1)
    tls: TlsConfig | None = None
    allow_plaintext: bool | None = None
    # Clone sessions + multicast groups the switch's replication engine holds
    # (bmv2's --max-mc-groups); None: unknown, only the switch's refusal tells.
    replication_groups: int | None = None
    # The highest clone session id the switch's P4Runtime server takes, where
    # that is below what the pipeline's mirror id can carry (P4Info): Tofino 1
    # keeps 1016..1023 for coalescing mirror sessions (Stratum's TNA limit is
    # 1015), and older PI frontends take only 1..511. None: the pipeline's.
    max_clone_session_id: int | None = None
    # How far ahead the switch may carry a mediation's end on its own
    # (controller.clock): with the controller away, every copy stops by
    # then at the latest. Renewed when half of it is left.
    lease: timedelta = LEASE
