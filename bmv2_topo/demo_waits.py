"""The demo's two waits on the MD: until its intercepts are provisioned, and
until the copies still in flight after the traffic have arrived.

Both read the MD's status file and both poll for a condition with a
generous limit, never a fixed sleep: the demo (and the end-to-end tests that
run it) must hold on a loaded machine, where the IAP may take many seconds to
come up and a busy switch may hold a backlog of copies. Kept apart from the
run (bmv2_topo.demo) so its steps read as steps; each stops waiting early
when a process or a switch it waits on has died.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bmv2_topo.demo_setup import DemoError
from bmv2_topo.report import expected_counts, sort_out
from bmv2_topo.supervise import Child, Progress, SwitchWatch
from bmv2_topo.wire import Recorder
from mediation.stream_filter import Filter

__all__ = ["READY_TIMEOUT", "SETTLE_LIMIT", "settle", "wait_provisioned"]

READY_TIMEOUT = 90.0  # seconds for the IAP to come up and the MD to provision
SETTLE_LIMIT = 20.0  # seconds to wait for copies in flight after the traffic


def wait_provisioned(status_file: Path, children: list[Child], watch: SwitchWatch, progress: Progress,
                     streams: int) -> dict:
    """Until the MD's keeper holds every intercept active and the IAP said Active for each stream."""
    deadline = time.monotonic() + READY_TIMEOUT
    said: set[str] = set()
    while True:
        for child in children:
            if not child.alive:
                raise DemoError(child.failure())
        if watch.event.is_set():
            raise DemoError(watch.died[0])
        try:
            status = json.loads(status_file.read_text())
        except (OSError, json.JSONDecodeError):
            status = None
        if status and "keeper" in status:
            keeper = status["keeper"]
            for event in keeper["events"]:
                if event not in said:
                    said.add(event)
                    progress(f"MD: {event.split(' ', 1)[1]}", mark="   ")
            active = [n for n in status.get("notifications", []) if n["kind"] == "active"]
            if all(k["state"] == "active" for k in keeper["intercepts"].values()) and len(active) >= streams:
                progress(f"IAP confirmed with {len(active)} ciscoTap2MIBActive informs (one per stream)", mark="   ")
                return status
        if time.monotonic() > deadline:
            raise DemoError(f"the MD did not get its intercepts provisioned within {READY_TIMEOUT:.0f}s; see "
                            f"{children[0].log} and {children[1].log}")
        time.sleep(0.2)


def settle(recorder: Recorder, owner: dict[str, str], status_file: Path, watch: SwitchWatch,
           progress: Progress, intercepts: dict[int, tuple[Filter, ...]]) -> None:
    """Until the copies still on their way have arrived: the wires are quiet and
    the MD counted, per intercept, as many packets as the wires carried (a slow
    or busy switch may hold a backlog). Gives up after SETTLE_LIMIT seconds."""
    deadline = time.monotonic() + SETTLE_LIMIT
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if watch.event.is_set():
            time.sleep(1.0)  # what the dead switch sent before it stopped
            return
        if len(recorder.frames) != seen:
            seen, quiet_since = len(recorder.frames), time.monotonic()
        elif time.monotonic() - quiet_since >= 0.5:
            want = expected_counts(sort_out(list(recorder.frames), owner), intercepts)
            try:
                status = json.loads(status_file.read_text())
                got = {i["cccid"]: i["packets"] for i in status["content"]["intercepts"]}
            except (OSError, json.JSONDecodeError, KeyError):
                got = {}
            if all(got.get(cccid, 0) >= n for cccid, n in want.items()):
                return
        time.sleep(0.25)
    progress(f"after {SETTLE_LIMIT:.0f}s the MD still counts fewer packets than the wires carried; "
             "reporting what arrived", mark="!!")
