"""The keeper's side of an MD restart (mediation/keeper_changes.py), against
p4tap's real SNMPv3 agent and a real switch: a derived tap restored from the
state file is kept as the IAP holds it, with the stream indexes it finds
there, so that a move after the restart is made before broken on the same
row and a removal removes exactly those streams; a warrant's intercept the
IAP holds and nobody wants any more is torn down at the first audit."""

from __future__ import annotations

from mediation.config import subject_filters
from mediation.config import InterceptSpec
from mediation.keeper import Keeper
from tests.snmp_support import tap_switch  # noqa: F401 (fixture)
from tests.test_md_snmp import MD, held, iap, iap_settings, wait_for

ALICE, CAROL = 4242, 4243


def tap(cccid: int, address: str) -> InterceptSpec:
    return InterceptSpec(cccid, MD, subject_filters(address), 60, derived_from=f"RADIUS session at {address}")


def test_a_restored_tap_is_kept_moved_on_its_row_and_removed_and_an_unwanted_one_goes(tmp_path, tap_switch):
    with iap(tmp_path, tap_switch) as (controller, port):
        before = Keeper(iap_settings(port), [])
        try:   # the MD before the restart: alice's tap moved once (streams 3 and 4 now), carol's
            for spec in (tap(ALICE, "192.0.2.10"), tap(CAROL, "192.0.2.30")):
                before.want(spec)
                before.apply_pending()
            before.want(tap(ALICE, "192.0.2.11"))
            before.apply_pending()
            assert [s.index for s in held(controller)[ALICE][1]] == [3, 4]
        finally:
            before.close()

        # the new MD: alice's tap restored, carol's session ended while it was down (its state has none)
        keeper = Keeper(iap_settings(port), [])
        keeper.keep_from_start([tap(ALICE, "192.0.2.11")])
        keeper.claim({ALICE, CAROL})
        keeper.start()
        try:
            wait_for(lambda: CAROL not in held(controller) and keeper.status.intercepts[ALICE].state == "active", 30)
            assert keeper.status.intercepts[ALICE].provisioned == 0, "kept as the IAP holds it"
            assert [s.index for s in held(controller)[ALICE][1]] == [3, 4]

            keeper.want(tap(ALICE, "192.0.2.12"))   # an Interim after the restart: made before broken
            wait_for(lambda: [s.index for s in held(controller)[ALICE][1]] == [5, 6], 30)   # 3 and 4 gone
            assert sorted(str(s.filter.src_address) for s in held(controller)[ALICE][1]) == ["192.0.2.12", "None"]

            keeper.unwant(ALICE)   # the Stop
            wait_for(lambda: held(controller) == {}, 30)
        finally:
            keeper.stop()
