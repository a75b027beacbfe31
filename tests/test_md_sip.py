"""Issue 15's SIP half in the MD, against p4tap's real SNMPv3 agent and a real
switch behind it: `p4tap md listen`'s daemon keeps standing signalling taps on
the SIP servers (address and protocol, no port), its IRI function reads what
real sipp calls put on the wire (tests/test_sip_netns.py's namespaces: a
target's call alice -> bob and a non-targets' carol -> dave at once, with
RTP, over UDP with the INVITE in IP fragments and over TCP), and for the
target alone provisions over SNMPv3 one intercept of the call's media
endpoints under the warrant's CCCID, gone after the BYE, and hands the call's
IRI to the warrant's agency only. Nothing of the non-targets' call is kept.

The copies are what the IAP makes of those wires (each packet a standing
tap's filter selects, wrapped as the IAP wraps it), sent over loopback in
wire order, the call's BYE only once the MD holds the answered call's tap
(tests/test_e2e_voip.py, if present, does it through the switch's data path).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP  # noqa: E402

from mediation.config import load  # noqa: E402
from mediation.daemon import MdDaemon  # noqa: E402
from mediation.iri import IriRecord  # noqa: E402
from mediation.pcli import encode  # noqa: E402
from tests.conftest import needs_root  # noqa: E402
from tests.sip_support import ip_filter_of  # noqa: E402
from tests.snmp_support import free_udp_port, tap_switch  # noqa: E402,F401 (fixture)
from tests.test_md_radius import saved_status, signalling_md_toml  # noqa: E402
from tests.test_md_snmp import held, iap, md, wait_for  # noqa: E402
from tests.test_sip_netns import OTHER, PEER, PEER_B, SUBJECT, _media, wires  # noqa: E402,F401 (fixture)

pytestmark = [needs_root, pytest.mark.root,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (Debian sip-tester; make apt-deps)"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make apt-deps)")]

SERVER, SERVER_B, ALICE, ERIN = 90002, 90003, 4243, 4244


def md_toml(tmp_path: Path, agent_port: int, content_port: int, signalling_port: int) -> Path:
    return signalling_md_toml(tmp_path, agent_port, content_port, signalling_port, f"""[[sip_server]]
address = "{PEER}"
content_id = {SERVER}

[[sip_server]]
address = "{PEER_B}"
content_id = {SERVER_B}
transports = ["udp", "tcp"]

[[identity_target]]
content_id = {ALICE}
sip_uri = "sip:alice@example.test"
lifetime = 60

[[identity_target]]
content_id = {ERIN}
sip_user = "erin"
lifetime = 60

[[agency]]
name = "lea-a"
cccids = [{ALICE}]
file = "lea-a"

[[agency]]
name = "lea-e"
cccids = [{ERIN}]
file = "lea-e"
""")


def held_filters(controller, cccid: int) -> set:
    return {s.filter for s in held(controller).get(cccid, (None, []))[1]}


def test_target_call_media_tapped_over_snmp_from_real_sipp_signalling_and_iri_to_its_agency_only(tmp_path, tap_switch,
                                                                                                 wires):
    content_port, signalling_port = free_udp_port(), free_udp_port()
    with iap(tmp_path / "iap", tap_switch) as (controller, agent_port):
        config = load(md_toml(tmp_path, agent_port, content_port, signalling_port))
        standing = config.signalling_intercepts()
        daemon = MdDaemon(config)
        runner = threading.Thread(target=daemon.run, daemon=True)
        runner.start()
        send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def iap_copies(packets) -> None:
            """What the IAP's standing taps copy of these wire packets, to the MD's signalling port."""
            for p in packets:
                ip = bytes(p[IP])
                for spec in standing:
                    if any(f.matches(ip) for f in spec.filters):
                        send.sendto(encode(spec.content_id, ip), ("127.0.0.1", signalling_port))

        try:
            # the standing taps: each server's UDP and TCP, both ways, no port (fragments and ephemeral ports)
            for spec in standing:
                wait_for(lambda spec=spec: held_filters(controller, spec.content_id) ==
                         {ip_filter_of(f) for f in spec.filters}, 30)
            mediation, _ = held(controller)[SERVER]
            assert (str(mediation.dest_address), mediation.dest_port) == ("203.0.113.10", 7001)

            ordered = wires.in_order()
            subject = {id(p) for p in wires.subject}
            bye = next(n for n, p in enumerate(ordered) if b"BYE sip:" in bytes(p) and id(p) in subject)
            iap_copies(ordered[:bye])   # the call set up and answered, and the non-targets' call beside it
            wait_for(lambda: ALICE in daemon.derived.taps and len(daemon.derived.taps[ALICE].parts) == 2, 30)
            wanted = [f for part in daemon.derived.taps[ALICE].parts.values() for f in part]   # both endpoints
            wait_for(lambda: held_filters(controller, ALICE) == {ip_filter_of(f) for f in wanted}, 30)
            assert str(held(controller)[ALICE][0].dest_address) == "203.0.113.10"
            assert set(held(controller)) == {SERVER, SERVER_B, ALICE}, "carol's call and erin made no tap"
            # what the IAP now holds selects exactly the subject's media on the wire, nothing of the other call
            subject_media = _media(wires.subject)
            assert len(subject_media) >= 50
            assert [ip for ip in subject_media + _media(wires.other) if any(f.matches(ip) for f in wanted)] \
                == subject_media

            # `p4tap md status`: the target, her call and the tap derived from it
            wait_for(lambda: str(ALICE) in saved_status(config).get("iri", {}).get("derived_taps", {}), 30)
            shown = md("status", "--config", str(tmp_path / "md.toml")).stdout
            assert (f"target {ALICE} (sip_uri sip:alice@example.test): call " in shown
                    and "sip:alice@example.test -> sip:bob@example.test, answered" in shown
                    and f"media {SUBJECT}:6000, {PEER}:6000" in shown), shown
            assert f"target {ERIN} (sip_uri sip:erin@*): no call seen" in shown, shown
            for host in (SUBJECT, PEER):   # each endpoint both ways, RTP and RTCP
                assert (f"derived tap {ALICE}: dst {host}/32, protocol 17, dst ports 6000-6001; src {host}/32, "
                        f"protocol 17, src ports 6000-6001 (SIP call ") in shown, shown
            assert f"intercept {ALICE} [SIP call " in shown and "]: active" in shown, shown
            assert "carol" not in shown and "dave" not in shown and OTHER not in shown

            iap_copies(ordered[bye:])   # the BYE: the tap goes
            wait_for(lambda: ALICE not in held(controller), 30)
            wait_for(lambda: daemon.status()["iri"]["protocols"]["sip"]["calls"] == 0, 30)
            status = daemon.status()
        finally:
            send.close()
            daemon.stop()
            runner.join(30)
        assert set(held(controller)) == {SERVER, SERVER_B}

    sip = status["iri"]["protocols"]["sip"]
    assert sip["discarded_non_target"] >= 6, "carol's call was parsed and dropped"
    assert sip["not_sip"] >= 50, "the RTP the server's UDP tap also copied is not SIP"
    records = [IriRecord.from_json(line) for line in (tmp_path / "lea-a" / f"iri-{ALICE}.jsonl").read_bytes().splitlines()]
    kinds = [r.kind for r in records]
    assert kinds[0] == "call-begin" and kinds.count("call-answer") == 1 and kinds.count("call-end") == 1, kinds
    assert kinds.index("call-begin") < kinds.index("call-answer") < kinds.index("call-end")
    begin, answer = records[0], records[kinds.index("call-answer")]
    end = records[kinds.index("call-end")]
    assert begin.parties["from"] == "sip:alice@example.test" and begin.parties["to"] == "sip:bob@example.test"
    assert begin.peer == SUBJECT and begin.message.startswith("INVITE sip:bob@")
    assert {(m["address"], m["port"]) for m in answer.media} == {(SUBJECT, 6000), (PEER, 6000)}
    assert end.reason == "BYE" and end.media == ()
    assert all(r.cccid == ALICE and r.identity == {"sip_uri": "sip:alice@example.test"} and r.session == begin.session
               for r in records)
    assert list((tmp_path / "lea-e").iterdir()) == [], "erin placed no call: lea-e gets nothing"
    # nothing of the non-targets' call, and no signalling copy, is kept anywhere
    for f in tmp_path.rglob("*"):
        if f.is_file() and f.suffix in (".jsonl", ".pcap", ".json"):
            data = f.read_bytes()
            assert b"carol" not in data and b"dave" not in data and OTHER.encode() not in data, f
    assert not [p for p in tmp_path.rglob("*.pcap") if str(SERVER) in p.name or str(SERVER_B) in p.name]
    assert json.loads(config.status_file.read_text())["iri"]["derived_taps"] == {}, "no derived tap after the BYE"
