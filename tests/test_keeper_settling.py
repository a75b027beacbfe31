"""The keeper's audit meets streams a change just made that the IAP has not
activated yet (notInService until its switch write is done). A CI run under
load had its audit read the IAP in that moment, right after a RADIUS target's
second session was added, and tear the whole intercept down and provision it
again: two of the target's pings went untapped meanwhile. Now such streams
are left to the IAP ("settling"); an intercept missing a stream is still
provisioned again.

Against p4tap's real SNMPv3 agent and a real switch. The moment itself
(tens of milliseconds, only under load) cannot be hit on demand, so the
audit is handed the IAP's real table as read after the move with the new
streams' status put back to what the IAP shows before it activates them
(notInService): the keeper's decision and its SETs are the real ones."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from mediation.config import InterceptSpec, subject_filters
from mediation.keeper import Keeper
from tests.snmp_support import tap_switch  # noqa: F401 (fixture)
from tests.test_md_snmp import MD, held, iap, iap_settings

ALICE = 4242
NOT_IN_SERVICE = 2


def spec(*addresses: str) -> InterceptSpec:
    filters = tuple(f for a in addresses for f in subject_filters(a))
    return InterceptSpec(ALICE, MD, filters, 60, derived_from=" ".join(addresses))


def moved(keeper: Keeper):
    """alice's tap on one address, then on two (a second session): the IAP's table after it."""
    keeper.want(spec("192.0.2.10"))
    keeper.apply_pending()
    keeper.want(spec("192.0.2.10", "192.0.2.11"))
    keeper.apply_pending()
    client = keeper._client()
    return client, client.intercepts()[ALICE]


def test_streams_not_active_yet_are_left_to_the_iap(tmp_path, tap_switch):
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), [])
        try:
            client, have = moved(keeper)
            assert sorted(have.streams) == [1, 2, 3, 4]
            before = keeper.status.intercepts[ALICE].provisioned
            settling = dataclasses.replace(have, streams={
                i: dataclasses.replace(s, status=NOT_IN_SERVICE) if i > 2 else s for i, s in have.streams.items()})
            assert keeper._keep(client, keeper.specs[0], settling) is None, "nothing to provision"
            kept = keeper.status.intercepts[ALICE]
            assert kept.state == "settling" and kept.provisioned == before and "2 of 4" in kept.last_problem
            assert [s.index for s in held(controller)[ALICE][1]] == [1, 2, 3, 4], "nothing torn down"
            # still settling when its Timeout is due: the active streams' Timeout is moved on all the same
            due = dataclasses.replace(settling, timeout=datetime.now(timezone.utc) + timedelta(seconds=10))
            assert keeper._keep(client, keeper.specs[0], due) is None and kept.refreshed == 1
            assert client.intercepts()[ALICE].timeout > datetime.now(timezone.utc) + timedelta(seconds=50)
            keeper.audit()  # the IAP as it really is by now: all four active
            assert keeper.status.intercepts[ALICE].state == "active"
        finally:
            keeper.close()


def test_an_intercept_missing_a_stream_is_still_provisioned_again(tmp_path, tap_switch):
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), [])
        try:
            client, have = moved(keeper)
            before = keeper.status.intercepts[ALICE].provisioned
            client.remove(ALICE, [4], mediation=False)  # a stream the IAP lost
            provisioning = keeper._keep(client, keeper.specs[0], client.intercepts()[ALICE])
            assert provisioning is not None and len(provisioning.filters) == 4
            keeper._provision(client, [(keeper.specs[0], provisioning)])
            assert keeper.status.intercepts[ALICE].provisioned == before + 1
            assert [s.index for s in held(controller)[ALICE][1]] == [1, 2, 3, 4]
        finally:
            keeper.close()
