"""A change to the intent carried to the store and the switches, all or nothing.

The controller's promise is that no tap is ever half installed: a change is
planned on every switch it touches first (`stage`: a refusal there changes
nothing), then stored with the ids it uses, then written switch by switch;
if a write fails part-way, the switches already written are undone, every
switch's plan rolled back and the stored intent put back as it was. An
expiry is the exception (`keep_intent`): past its Timeout nothing may be
delivered, so it goes from the intent whatever a switch says, and a switch
that cannot take it now is left to reconcile (`carry_regardless`).

These steps sit below the controller (controller.service), which serialises
changes under its lock and audits each one before and after (controller.
change_records); they work on the switches, the store and the refusals they
are given and import nothing above controller.managed_switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from controller import crashpoints
from controller.incremental import Intercept
from controller.managed_switch import Intent, ManagedSwitch, SwitchChange
from controller.model import InterceptError
from controller.plan_ids import IdChanges
from controller.refusals import Refusals
from controller.store import IntentStore, StoreError
from controller.switch import SwitchError

__all__ = ["Changes", "ProvisionError", "carry", "carry_regardless", "stage"]

Changes = dict[str, dict[int, Intercept | None]]  # per switch: content id -> new intercept, None to remove


class ProvisionError(Exception):
    """An intercept could not be carried out; nothing of it remains installed."""


def stage(switches: Mapping[str, ManagedSwitch], changes: Changes, now: datetime) -> dict[str, SwitchChange]:
    """Plan the change on every switch it touches; on InterceptError none keeps it."""
    staged: dict[str, SwitchChange] = {}
    try:
        for name in sorted(changes):
            staged[name] = switches[name].stage(changes[name], now)
    except BaseException:
        for name in staged:
            switches[name].rollback()
        raise
    return staged


def carry(switches: Mapping[str, ManagedSwitch], store: IntentStore, refused: Mapping[str, Refusals],
          staged: Mapping[str, SwitchChange], previous: Mapping[int, Intent], seq: int,
          put: Sequence[Intent] = (), remove: Sequence[int] = (), keep_intent: bool = False) -> None:
    """Store the intent with the ids it uses, marked with `seq` (its
    write-ahead audit record), then write every switch's part.

    If a switch fails, the switches already written are undone and every
    switch's state rolled back; the stored intent goes back to `previous`
    (the changed intercepts as they were), unless `keep_intent` (an expiry:
    the switches are left to reconcile)."""
    written = {name: switches[name].ids.take_changes() for name in staged}
    try:
        store.change(put=put, remove=remove, ids=written, intent_seq=seq)
    except (StoreError, InterceptError):
        for name in staged:
            switches[name].rollback()
        raise
    crashpoints.reached("after-store")
    if keep_intent:
        carry_regardless(switches, store, staged, written)
        return
    done: list[ManagedSwitch] = []
    try:
        for name, change in staged.items():
            switch = switches[name]
            switch.retire_counters(change)
            switch.apply(change)
            done.append(switch)
    except SwitchError:
        for switch in reversed(done):
            switch.undo(staged[switch.name])
        for name in staged:
            switches[name].rollback()
            if keep_intent:
                switches[name].stale = True
        ids = {name: switches[name].ids.current(changes) for name, changes in written.items()}
        if keep_intent:
            store.change(ids=ids)
        else:
            fresh = [m.content_id for m, _, _ in put if m.content_id not in previous]
            store.change(put=previous.values(), remove=fresh, ids=ids, intent_seq=seq)
            for name, by_id in refused.items():  # putting them back dropped their refusals
                if by_id.keys() & previous.keys():
                    store.set_refusals(name, by_id)
        raise
    for name in staged:
        switches[name].commit()


def carry_regardless(switches: Mapping[str, ManagedSwitch], store: IntentStore,
                     staged: Mapping[str, SwitchChange], written: Mapping[str, IdChanges]) -> None:
    """Write an expiry to every switch that takes it. It is not negotiable:
    one switch that is down (or refuses) must not keep the intercept on
    the others, so each is written on its own; one that fails is rolled
    back, marked stale and left to reconcile when it answers, where the
    expired intercept is never planned again. Raises the first failure
    after all were tried, for the caller to log."""
    failure: SwitchError | None = None
    for name, change in staged.items():
        switch = switches[name]
        try:
            switch.retire_counters(change)
            switch.apply(change)
        except SwitchError as error:
            switch.rollback()
            switch.stale = True
            failure = failure or error
        else:
            switch.commit()
    if failure is not None:  # the store holds the ids the failed switches gave back, as after a rollback
        store.change(ids={name: switches[name].ids.current(changes) for name, changes in written.items()})
        raise failure
