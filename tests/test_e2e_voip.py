"""Issue 15 end to end: the demo's voip variant through a real switch.

The warrant names a SIP identity, not an address or a port. The MD taps the
SIP service's signalling (standing intercepts of their own CCCIDs and MD
port, on the servers' addresses and protocols, provisioned over SNMPv3);
sipp (Debian sip-tester), a real SIP client and server, places the target's
call (alice -> bob, RTP both ways) and at the same time a non-targets' call
(carol -> dave, on the service's second address). Asserted:

- alice's INVITE made the MD provision her call's media tap, and the media
  the subject sent and received (the reference capture of every wire) is
  exactly what the MD and lea-a got, each packet once; nothing of carol's
  call, nor of the subject's other traffic, anywhere;
- IRI: lea-a got alice's call begin, answer and end; lea-b (a warrant on
  someone who never calls) nothing; carol's messages were parsed and
  dropped, nothing of them kept, no signalling copy stored;
- after the BYE the tap is gone: what the subject sends from the same media
  port then is copied to no one;
- forwarding was untouched (byte-identical frames at the peer).
"""

from __future__ import annotations

import shutil

import pytest

from bmv2_topo.demo import Options, Progress, run_demo
from bmv2_topo.voip_scenario import CCCID_ALICE, RTP_PACKETS
from tests.test_e2e_demo import assert_proven, e2e

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp not installed (Debian sip-tester; make setup installs it)")


@e2e
@needs_sipp
def test_voip_target_call_media_is_tapped_from_its_signalling_and_nothing_else_is(tmp_path, target):
    report = run_demo(Options("voip", "netns", tmp_path / "demo", target=target), Progress())
    assert report.target == target
    assert_proven(report)
    assert [d.cccid for d in report.deliveries] == [CCCID_ALICE, CCCID_ALICE]
    assert {d.who for d in report.deliveries} == {"md", "lea-a"}
    assert all(d.expected.packets >= 2 * RTP_PACKETS for d in report.deliveries), "the call's RTP, both ways"
    signalling = report.signalling
    assert signalling["tap_live"]
    kinds = signalling["iri"]["lea-a"]
    assert kinds[0] == "call-begin" and kinds.count("call-answer") == 1 and kinds.count("call-end") == 1, kinds
    assert signalling["iri"]["lea-b"] == []
    assert signalling["after_bye_sent"] > 0 and signalling["after_bye_captured"] == 0
    assert signalling["discarded_non_target"] >= 4
    assert list((tmp_path / "demo" / "lea-b").glob("cccid-*.pcap")) == []
