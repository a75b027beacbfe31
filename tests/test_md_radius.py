"""Issue 15's RADIUS half in the MD, against p4tap's real SNMPv3 agent and
a real switch behind it: `p4tap md listen`'s daemon keeps a standing
signalling tap on the RADIUS server, its IRI function reads the accounting
that radclient sends (wrapped as the IAP's copies are), and for the target
alone provisions a data tap on its Framed-IP-Address under the warrant's
CCCID, moves it on a new address, taps a second concurrent session of hers
beside the first (each Stop removes only its own session's streams), and
hands IRI records to the warrant's agencies only. The non-target's messages leave no trace.

The copies here come over loopback, not through the switch's data path
(tests/test_e2e_radius.py does that end to end in network namespaces).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from scapy.layers.inet import IP, UDP, fragment
from scapy.packet import Raw

from mediation.config import load
from mediation.daemon import MdDaemon
from mediation.iri import IriRecord
from mediation.pcli import encode
from tests.radius_support import accounting, needs_radclient, radclient_bytes
from tests.snmp_support import free_udp_port, tap_switch  # noqa: F401 (fixture)
from tests.test_md_snmp import held, iap, md, wait_for

RADIUS, NAS = "198.51.100.50", "198.51.100.60"
SIGNALLING_CCCID, ALICE, CAROL = 90001, 4242, 5555


def signalling_md_toml(tmp_path: Path, agent_port: int, content_port: int, signalling_port: int,
                       servers_and_targets: str) -> Path:
    """An md.toml with content, IAP and signalling sections, then the given
    servers, identity targets and agencies (the RADIUS and SIP tests alike)."""
    from tests.snmp_support import AUTH_KEY, PRIV_KEY

    path = tmp_path / "md.toml"
    path.write_text(f"""
[content]
listen = ["127.0.0.1:{content_port}"]
out_dir = "md"

[iap]
address = "127.0.0.1:{agent_port}"
user = "md1"
auth_key = "{AUTH_KEY}"
priv_key = "{PRIV_KEY}"
timeout = 1.0
retries = 1
audit_interval = 2.0

[signalling]
listen = "127.0.0.1:{signalling_port}"
deliver_to = "203.0.113.10:7001"
content_to = "203.0.113.10:7000"

""" + servers_and_targets)
    path.chmod(0o600)
    return path


def md_toml(tmp_path: Path, agent_port: int, content_port: int, signalling_port: int) -> Path:
    return signalling_md_toml(tmp_path, agent_port, content_port, signalling_port, f"""[[radius_server]]
address = "{RADIUS}"
content_id = {SIGNALLING_CCCID}

[[identity_target]]
content_id = {ALICE}
radius_username = "alice"
lifetime = 60

[[identity_target]]
content_id = {CAROL}
calling_station_id = "02-00-00-00-0c-01"
lifetime = 60

[[agency]]
name = "lea-a"
cccids = [{ALICE}]
file = "lea-a"

[[agency]]
name = "lea-c"
cccids = [{CAROL}]
file = "lea-c"
""")


def copy_of(radius: bytes, cccid: int = SIGNALLING_CCCID) -> bytes:
    """A RADIUS message from the NAS to the server as the IAP copies it to the MD (pcli)."""
    return encode(cccid, bytes(IP(src=NAS, dst=RADIUS) / UDP(sport=40000, dport=1813) / Raw(radius)))


def copies_in_fragments(radius: bytes) -> list[bytes]:
    """As copy_of, the message cut into IP fragments of 32 octets (a NAS on a small MTU), each copied alone."""
    packet = IP(src=NAS, dst=RADIUS, id=15) / UDP(sport=40000, dport=1813) / Raw(radius)
    copies = [encode(SIGNALLING_CCCID, bytes(f)) for f in fragment(packet, 32)]
    assert len(copies) > 1
    return copies


def saved_status(config) -> dict:
    """What the daemon last wrote for `p4tap md status` ({} before its first write)."""
    try:
        return json.loads(config.status_file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def streams(controller, cccid: int) -> list[tuple[str, str]]:
    return [(str(s.filter.src_address), str(s.filter.dst_address)) for s in held(controller)[cccid][1]]


@needs_radclient
def test_target_session_becomes_a_tap_that_moves_and_goes_and_iri_reaches_only_its_agency(tmp_path, tap_switch):
    import socket

    alice = [radclient_bytes(accounting("Start", "alice", "192.0.2.10")),
             radclient_bytes(accounting("Interim-Update", "alice", "192.0.2.11")),
             radclient_bytes(accounting("Stop", "alice", "192.0.2.11"))]
    # her second device, a session of its own at the same time: tapped beside the first, until its own Stop
    laptop = [radclient_bytes(accounting(s, "alice", "192.0.2.12", session="s2")) for s in ("Start", "Stop")]
    bob = [radclient_bytes(accounting(s, "bob", "192.0.2.30", session="b1")) for s in ("Start", "Stop")]
    content_port, signalling_port = free_udp_port(), free_udp_port()
    with iap(tmp_path / "iap", tap_switch) as (controller, agent_port):
        config = load(md_toml(tmp_path, agent_port, content_port, signalling_port))
        daemon = MdDaemon(config)
        runner = threading.Thread(target=daemon.run, daemon=True)
        runner.start()
        send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # the standing signalling tap: the server's requests and its answers, to the signalling port
            wait_for(lambda: SIGNALLING_CCCID in held(controller)
                     and streams(controller, SIGNALLING_CCCID) == [("None", RADIUS), (RADIUS, "None")], 30)
            mediation, _ = held(controller)[SIGNALLING_CCCID]
            assert (str(mediation.dest_address), mediation.dest_port) == ("203.0.113.10", 7001)

            # the non-target's session: nothing provisioned
            send.sendto(copy_of(bob[0]), ("127.0.0.1", signalling_port))
            for copy in copies_in_fragments(alice[0]):   # her Start in IP fragments: made whole, then read
                send.sendto(copy, ("127.0.0.1", signalling_port))
            wait_for(lambda: ALICE in held(controller)
                     and streams(controller, ALICE) == [("192.0.2.10", "None"), ("None", "192.0.2.10")], 30)
            assert str(held(controller)[ALICE][0].dest_address) == "203.0.113.10"
            assert set(held(controller)) == {SIGNALLING_CCCID, ALICE}, "bob's session made no tap"

            # `p4tap md status` shows the target, her session and the tap derived from it
            wait_for(lambda: str(ALICE) in saved_status(config).get("iri", {}).get("derived_taps", {}), 30)
            shown = md("status", "--config", str(tmp_path / "md.toml")).stdout
            assert f"target {ALICE} (radius_username alice): session s1 from {NAS} on 192.0.2.10/32" in shown, shown
            assert f"target {CAROL} (calling_station_id 02-00-00-00-0c-01): no session seen" in shown, shown
            assert "1 made whole from IP fragments, 0 fragment sets given up" in shown, shown
            assert (f"derived tap {ALICE}: src 192.0.2.10/32; dst 192.0.2.10/32 "
                    "(RADIUS session s1 at 192.0.2.10/32)") in shown, shown
            assert f"intercept {ALICE} [RADIUS session s1 at 192.0.2.10/32]: active" in shown, shown
            assert "bob" not in shown and "192.0.2.30" not in shown

            send.sendto(copy_of(alice[1]), ("127.0.0.1", signalling_port))  # a new address: the tap moves
            wait_for(lambda: ALICE in held(controller)
                     and streams(controller, ALICE) == [("192.0.2.11", "None"), ("None", "192.0.2.11")], 30)
            # made before broken: the new address's streams were added to the same mediation row before the
            # old ones went (fresh indexes 3 and 4), so no packet of the target went untapped meanwhile
            assert [s.index for s in held(controller)[ALICE][1]] == [3, 4]

            send.sendto(copy_of(laptop[0]), ("127.0.0.1", signalling_port))  # a second session: both tapped
            wait_for(lambda: ALICE in held(controller) and streams(controller, ALICE) == [
                ("192.0.2.11", "None"), ("None", "192.0.2.11"), ("192.0.2.12", "None"), ("None", "192.0.2.12")], 30)
            wait_for(lambda: len(next(t for t in saved_status(config)["iri"]["protocols"]["radius"]["targets"]
                                      if t["cccid"] == ALICE)["sessions"]) == 2, 30)
            shown = md("status", "--config", str(tmp_path / "md.toml")).stdout
            assert f"target {ALICE} (radius_username alice): session s1 from {NAS} on 192.0.2.11/32" in shown, shown
            assert f"target {ALICE} (radius_username alice): session s2 from {NAS} on 192.0.2.12/32" in shown, shown
            assert "last interim, 2 messages" in shown and "last start, 1 message" in shown, shown

            send.sendto(copy_of(bob[1]), ("127.0.0.1", signalling_port))
            send.sendto(copy_of(alice[2]), ("127.0.0.1", signalling_port))  # s1's Stop: only its part goes
            wait_for(lambda: ALICE in held(controller)
                     and streams(controller, ALICE) == [("192.0.2.12", "None"), ("None", "192.0.2.12")], 30)
            send.sendto(copy_of(laptop[1]), ("127.0.0.1", signalling_port))  # the last session's Stop: the tap goes
            wait_for(lambda: ALICE not in held(controller), 30)
            status = daemon.status()
        finally:
            send.close()
            daemon.stop()
            runner.join(30)
        assert set(held(controller)) == {SIGNALLING_CCCID}

    radius = status["iri"]["protocols"]["radius"]
    assert radius["messages"] == 7 and radius["discarded_non_target"] == 2
    records = [IriRecord.from_json(line) for line in (tmp_path / "lea-a" / "iri-4242.jsonl").read_bytes().splitlines()]
    assert [(r.kind, r.addresses, r.session, r.peer) for r in records] == [
        ("session-start", ("192.0.2.10/32",), "s1", NAS), ("session-update", ("192.0.2.11/32",), "s1", NAS),
        ("session-start", ("192.0.2.12/32",), "s2", NAS), ("session-stop", ("192.0.2.11/32",), "s1", NAS),
        ("session-stop", ("192.0.2.12/32",), "s2", NAS)]
    assert all(r.cccid == ALICE and r.identity == {"radius_username": "alice"} for r in records)
    assert list((tmp_path / "lea-c").iterdir()) == [], "lea-c's warrant saw no session: it gets nothing"
    # nothing of bob, and no signalling copy, is kept anywhere (minimality at the MD and the handover)
    for f in tmp_path.rglob("*"):
        if f.is_file() and f.suffix in (".jsonl", ".pcap", ".json"):
            data = f.read_bytes()
            assert b"bob" not in data and b"192.0.2.30" not in data, f
    assert not list(tmp_path.rglob(f"*{SIGNALLING_CCCID}*.pcap")), "signalling copies are never stored"
    saved = json.loads(config.status_file.read_text())
    assert saved["iri"]["derived_taps"] == {}, "no derived tap left after Stop"


def test_a_derived_tap_never_outlives_its_warrant(tmp_path, tap_switch):
    """The warrant's end bounds the Timeout the keeper gives the IAP, and the keeper removes the tap when it comes."""
    from datetime import datetime, timedelta, timezone

    from mediation.config import Endpoint, InterceptSpec, subject_filters
    from mediation.keeper import Keeper
    from tests.test_md_snmp import iap_settings

    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), [])
        try:
            keeper.want(InterceptSpec(ALICE, Endpoint("203.0.113.10", 7000), subject_filters("192.0.2.10"), 600,
                                      until=until, derived_from="RADIUS session s1"))
            keeper.apply_pending()
            mediation, _ = held(controller)[ALICE]
            assert mediation.timeout == until, "600 s of lifetime, but the warrant ends first"
            wait_for(lambda: datetime.now(timezone.utc) > until, 30)
            keeper.audit()
            assert ALICE not in held(controller) and ALICE not in keeper.status.intercepts
            assert ALICE not in {s.content_id for s in keeper.specs}
            assert any(f"intercept {ALICE}: its warrant ended" in e for e in keeper.status.events)
        finally:
            keeper.close()


def test_iri_records_go_over_each_agencys_own_channel_and_to_no_other_agency(tmp_path):
    """HI2 beside HI3: a file agency gets iri-N.jsonl, a UDP one a datagram, a TCP one a record, each
    the CCCID then the JSON record; an agency without the CCCID gets nothing."""
    import socket

    from mediation.handover import Agency, FileDelivery, Handover, TcpDelivery, UdpDelivery, read_records
    from mediation.iri import is_iri

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.settimeout(10)
    record = IriRecord(ALICE, 1.5, "radius", "session-start", {"radius_username": "alice"}, ("192.0.2.10/32",), "s1",
                       peer=NAS)
    handover = Handover([Agency("file", frozenset({ALICE}), FileDelivery(tmp_path / "file")),
                         Agency("udp", frozenset({ALICE}), UdpDelivery(*udp.getsockname())),
                         Agency("tcp", frozenset({ALICE}), TcpDelivery(*tcp.getsockname())),
                         Agency("other", frozenset({CAROL}), FileDelivery(tmp_path / "other"))])
    try:
        assert handover.dispatch_iri(record) == 3
        conn, _ = tcp.accept()
        conn.settimeout(10)
        stream = b""
        while not read_records(stream):
            stream += conn.recv(65536)
        conn.close()
        datagram = udp.recv(65536)
    finally:
        handover.close()
        udp.close()
        tcp.close()
    assert IriRecord.from_json((tmp_path / "file" / f"iri-{ALICE}.jsonl").read_bytes()) == record
    assert int.from_bytes(datagram[:4], "big") == ALICE and is_iri(datagram[4:])
    assert IriRecord.from_json(datagram[4:]) == record
    [(cccid, body)] = read_records(stream)
    assert cccid == ALICE and is_iri(body) and IriRecord.from_json(body) == record
    assert list((tmp_path / "other").iterdir()) == []
    counts = {a["name"]: a["counts"] for a in handover.summary()}
    assert counts["udp"][str(ALICE)]["iri"] == 1 and counts["other"] == {}


def test_md_provision_provisions_the_standing_signalling_tap(tmp_path, tap_switch):
    with iap(tmp_path / "iap", tap_switch) as (controller, agent_port):
        path = md_toml(tmp_path, agent_port, free_udp_port(), free_udp_port())
        result = md("provision", "--config", str(path))
        assert f"intercept {SIGNALLING_CCCID}: provisioned" in result.stdout, result.stdout + result.stderr
        assert streams(controller, SIGNALLING_CCCID) == [("None", RADIUS), (RADIUS, "None")]
        assert set(held(controller)) == {SIGNALLING_CCCID}, "warrants on identities derive taps only from signalling"
        md("remove", "--config", str(path), str(SIGNALLING_CCCID))
        assert held(controller) == {}
