"""Issue 15 end to end: the demo's radius variant through a real switch.

The warrant names a user, not an address. The MD taps the RADIUS server's
signalling (a standing intercept of its own CCCID and MD port, provisioned
over SNMPv3); radclient (freeradius-utils), a real NAS client, sends
accounting for the target (alice, on the subject's address) and for a
non-target (bob, on the other subscriber's); alice's second device opens a
session of its own at the same time (alice-2, on the subject's second
address). Asserted:

- alice's Start (3 kB: IP fragments on the NAS's link, through the switch,
  made whole at the MD) made the MD provision her tap, and what the subject sent
  and received (the reference capture of every wire) is exactly what the MD
  and lea-a got, each packet once; nothing of bob's address anywhere;
- both of alice's sessions were tapped at once: alice-2's pings reached the
  MD and lea-a (exactly, with the rest); its Stop removed only its own
  streams: what it sent after was copied to no one, while alice-1's traffic
  (the whole run's) still was;
- IRI: lea-a got each session's start and stop, lea-b (a warrant on
  someone who never logged in) nothing; bob's messages were parsed and
  dropped, nothing of them kept, no signalling copy stored;
- after Stop the tap is gone: what the subject sends then is copied to no one;
- forwarding was untouched (byte-identical frames at the peer).
"""

from __future__ import annotations

import shutil

import pytest

from bmv2_topo.demo import Options, Progress, run_demo
from bmv2_topo.radius_scenario import CCCID_ALICE
from tests.test_e2e_demo import assert_proven, e2e

needs_radclient = pytest.mark.skipif(shutil.which("radclient") is None,
                                     reason="radclient not installed (Debian freeradius-utils; make setup installs it)")


@e2e
@needs_radclient
def test_radius_target_is_tapped_from_its_accounting_and_nothing_else_is(tmp_path, target):
    report = run_demo(Options("radius", "netns", tmp_path / "demo", target=target), Progress())
    assert report.target == target
    assert_proven(report)
    assert [d.cccid for d in report.deliveries] == [CCCID_ALICE, CCCID_ALICE]
    assert {d.who for d in report.deliveries} == {"md", "lea-a"}
    signalling = report.signalling
    assert signalling["iri"] == {"lea-a": ["session-start alice-1", "session-start alice-2", "session-stop alice-2",
                                           "session-stop alice-1"], "lea-b": []}
    assert signalling["second_captured"] > 0, "alice-2's pings reached lea-a while both sessions were on"
    assert signalling["second_after_stop_sent"] > 0 and signalling["second_after_stop_captured"] == 0
    assert signalling["after_stop_sent"] > 0 and signalling["after_stop_captured"] == 0
    assert signalling["discarded_non_target"] == 3
    assert signalling["tap_live_ms"] is not None
    assert signalling["reassembled"] == 1, "alice's 3 kB Start crossed the switch in IP fragments, made whole at the MD"
    assert list((tmp_path / "demo" / "lea-b").glob("cccid-*.pcap")) == []
