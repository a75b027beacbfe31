"""ETSI TS 102 232 handover over TCP (mediation/etsi_delivery.py, mediation/spool.py):
a real collector process (mediation/etsi_collector.py) on loopback, killed with
SIGKILL mid-stream and restarted; the MD's side killed with SIGKILL and
restarted on its spool. What the agency ends up with is decoded and checked
for completeness, order and sequence numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mediation import etsi
from mediation.etsi_delivery import EtsiAgency, EtsiDelivery
from tests.test_etsi import _tracepktdump

ROOT = Path(__file__).resolve().parent.parent
CCCID = 4242


def packet(index: int) -> bytes:
    """An IPv4/UDP packet from the subject 192.0.2.10 whose payload says which one it is."""
    from scapy.layers.inet import IP, UDP
    return bytes(IP(src="192.0.2.10", dst="198.51.100.20") / UDP(sport=40000, dport=5004) / index.to_bytes(4, "big"))


def index_of(ip_packet: bytes) -> int:
    return int.from_bytes(ip_packet[-4:], "big")


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class CollectorProcess:
    """The agency's collector in a process of its own, so that it can be SIGKILLed."""

    def __init__(self, out: Path, port: int = 0) -> None:
        self.out = out
        self.proc = subprocess.Popen([sys.executable, "-m", "mediation.etsi_collector", "--listen",
                                      f"127.0.0.1:{port}", "--out", str(out)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on port "), line
        self.port = int(line.split()[-1])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def received(*files: Path) -> list[list[tuple[int, int, int]]]:
    """Per file, (CIN, sequence number, packet index) of every PDU, as it arrived."""
    out = []
    for path in files:
        buffer = bytearray(path.read_bytes() if path.exists() else b"")
        rows = []
        for pdu in etsi.split(buffer):
            value = etsi.decode(pdu)
            header, (kind, payloads) = value["pSHeader"], value["payload"]
            assert kind == "cCPayloadSequence"
            assert header["lawfulInterceptionIdentifier"] == b"LEA-A-17"
            ipcc = payloads[0]["cCContents"][1]["iPCCContents"][1]
            rows.append((header["communicationIdentifier"]["communicationIdentityNumber"],
                         header["sequenceNumber"], index_of(ipcc)))
        out.append(rows)
    return out


def assert_complete_and_in_order(per_file: list[list[tuple[int, int, int]]], expected: int) -> None:
    """What an agency checks: taken in arrival order, each PDU is either the next sequence number
    (no gap, nothing out of order) or one already seen (a resend after a reconnect, the same packet,
    discarded); at the end every packet 0..expected-1 is there, its sequence number its place."""
    seen: dict[int, int] = {}
    for rows in per_file:
        for cin, seq, index in rows:
            assert cin == CCCID
            if seq in seen:
                assert seen[seq] == index, f"sequence number {seq} reused for another packet"
                continue
            assert seq == len(seen), f"sequence number {seq} arrived where {len(seen)} was next"
            seen[seq] = index
    assert len(seen) == expected, f"{expected - len(seen)} packets missing"
    assert all(seen[seq] == seq for seq in seen), "the packets' order is not the sequence numbers' order"


def agency(tmp_path: Path, port: int, **overrides) -> EtsiAgency:
    settings = dict(name="lea-a", hi3=("127.0.0.1", port), liids={CCCID: "LEA-A-17"}, operator_id="p4tap",
                    network_element_id="iap1", spool_dir=tmp_path / "spool", keepalive=5.0, keepalive_wait=5.0)
    settings.update(overrides)
    return EtsiAgency(**settings)


def drained(delivery: EtsiDelivery) -> bool:
    return delivery.spools["hi3"].pending_bytes() == 0


def test_records_reach_the_collector_in_order_and_leave_the_spool_when_acknowledged(tmp_path):
    collector = CollectorProcess(tmp_path / "rx.etsi")
    delivery = EtsiDelivery(agency(tmp_path, collector.port))
    try:
        for i in range(500):
            assert delivery.deliver(time.time(), CCCID, packet(i))
        assert not delivery.deliver(time.time(), 999, packet(0)), "a CCCID the agency has no warrant for"
        wait_for(lambda: drained(delivery), "the spool to drain")
        status = delivery.status()["hi3"]
        assert status["appended"] == status["acknowledged"] == 500 and status["dropped"] == 0
        assert status["keepalives"] >= 1 and status["responses"] >= 1
    finally:
        delivery.close()
        collector.kill()
    rows = received(collector.out)
    assert_complete_and_in_order(rows, 500)
    assert len(rows[0]) == 500, "no record sent twice on an undisturbed connection"
    assert not list((tmp_path / "spool" / "hi3").glob("*.seg")) or \
        all(p.stat().st_size < 4 << 20 for p in (tmp_path / "spool" / "hi3").glob("*.seg"))


def test_collector_killed_mid_stream_gets_everything_after_it_comes_back(tmp_path):
    first = CollectorProcess(tmp_path / "rx1.etsi")
    delivery = EtsiDelivery(agency(tmp_path, first.port, keepalive_wait=2.0))
    total = 3000
    try:
        for i in range(total // 3):
            delivery.deliver(time.time(), CCCID, packet(i))
        wait_for(lambda: len(received(first.out)[0]) > 0, "the collector to receive something")
        first.kill()                                    # mid-stream: the spool still holds unacknowledged records
        for i in range(total // 3, total):              # the outage: everything goes to the spool
            delivery.deliver(time.time(), CCCID, packet(i))
        assert delivery.spools["hi3"].pending_bytes() > 0
        second = CollectorProcess(tmp_path / "rx2.etsi", first.port)
        try:
            wait_for(lambda: drained(delivery), "the spool to drain after the collector came back")
        finally:
            second.kill()
        assert delivery.status()["hi3"]["connects"] >= 2
    finally:
        delivery.close()
    assert_complete_and_in_order(received(first.out, second.out), total)


MD_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mediation.etsi_delivery import EtsiAgency, EtsiDelivery
    from tests.test_etsi_handover import CCCID, packet
    port, spool, start, stop, wait = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    delivery = EtsiDelivery(EtsiAgency("lea-a", ("127.0.0.1", port), {CCCID: "LEA-A-17"}, "p4tap", "iap1", spool,
                                       keepalive=5.0, keepalive_wait=5.0))
    for i in range(start, stop):
        delivery.deliver(time.time(), CCCID, packet(i))
    print("spooled", flush=True)
    while wait == "drain" and delivery.spools["hi3"].pending_bytes():
        time.sleep(0.02)
    if wait == "forever":
        time.sleep(3600)
    delivery.close()
    print("done", flush=True)
""")


def md_process(port: int, spool: Path, start: int, stop: int, wait: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", MD_SCRIPT, str(port), str(spool), str(start), str(stop), wait],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "spooled"
    return proc


def test_md_killed_mid_stream_and_restarted_delivers_its_spool_with_sequence_numbers_going_on(tmp_path):
    spool = tmp_path / "spool"
    collector = CollectorProcess(tmp_path / "rx.etsi")
    try:
        first = md_process(collector.port, spool, 0, 2000, "forever")
        wait_for(lambda: len(received(collector.out)[0]) > 0, "the collector to receive something")
        first.send_signal(signal.SIGKILL)              # the MD dies mid-stream, its spool on disk
        first.wait(30)
        second = md_process(collector.port, spool, 2000, 2500, "drain")
        assert second.stdout.readline().strip() == "done"
        assert second.wait(60) == 0
    finally:
        collector.kill()
    assert_complete_and_in_order(received(collector.out), 2500)


def test_md_restarted_during_an_outage_delivers_what_it_spooled_before(tmp_path):
    spool = tmp_path / "spool"
    collector = CollectorProcess(tmp_path / "rx0.etsi")
    port = collector.port
    collector.kill()                                   # the agency is down from the start
    first = md_process(port, spool, 0, 800, "forever")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert list(spool.glob("hi3/*.seg")), "the spool is on disk"
    collector = CollectorProcess(tmp_path / "rx.etsi", port)
    try:
        second = md_process(port, spool, 800, 900, "drain")
        assert second.stdout.readline().strip() == "done"
    finally:
        collector.kill()
    audit = [json.loads(line) for line in (spool / "hi3" / "audit.jsonl").read_text().splitlines()]
    assert any(a["event"] == "recovered" and a["records"] == 800 for a in audit)
    assert_complete_and_in_order(received(collector.out), 900)


@pytest.mark.parametrize("policy", ["drop-newest", "drop-oldest"])
def test_a_full_spool_drops_by_its_policy_counts_audits_and_alarms(tmp_path, policy):
    collector = CollectorProcess(tmp_path / "rx0.etsi")
    port = collector.port
    collector.kill()
    delivery = EtsiDelivery(agency(tmp_path, port, spool_max_bytes=64 << 10, overflow=policy))
    total = 2000
    try:
        accepted = [delivery.deliver(time.time(), CCCID, packet(i)) for i in range(total)]
        spool = delivery.spools["hi3"]
        assert spool.alarm and spool.pending_bytes() <= 64 << 10
        counts = delivery.status()["hi3"]
        assert counts["dropped"] > 0 and counts["overflows"] == 1
        collector = CollectorProcess(tmp_path / "rx.etsi", port)
        try:
            wait_for(lambda: drained(delivery), "the spool to drain")
        finally:
            collector.kill()
        assert not spool.alarm, "the alarm clears once the agency has taken the backlog"
    finally:
        delivery.close()
    [rows] = received(collector.out)
    indices = [index for _, _, index in rows]
    assert indices == sorted(indices) and [seq for _, seq, _ in rows] == indices
    assert len(indices) + counts["dropped"] == total
    if policy == "drop-newest":
        assert indices == list(range(len(indices))) and accepted.count(False) == counts["dropped"]
    else:
        assert indices[-1] == total - 1 and indices[0] > 0 and all(accepted)
    events = [json.loads(line)["event"] for line in (tmp_path / "spool" / "hi3" / "audit.jsonl").read_text().splitlines()]
    assert "overflow" in events and "alarm-raised" in events and events[-2:] == ["overflow-ended", "alarm-cleared"]


def test_tracepktdump_reads_what_the_collector_received(tmp_path):
    tool = _tracepktdump()
    if tool is None:
        pytest.skip("tracepktdump (libtrace built with libwandder) not found: set P4TAP_TRACEPKTDUMP")
    collector = CollectorProcess(tmp_path / "rx.etsi")
    delivery = EtsiDelivery(agency(tmp_path, collector.port, targets={CCCID: (__import__("ipaddress").ip_network("192.0.2.10/32"),)}))
    try:
        for i in range(50):
            delivery.deliver(time.time(), CCCID, packet(i))
        wait_for(lambda: drained(delivery), "the spool to drain")
    finally:
        delivery.close()
        collector.kill()
    out = subprocess.run([tool, f"etsifile:{collector.out}"], capture_output=True, text=True, timeout=60).stdout
    assert out.count("pS-PDU:") == 50
    assert out.count("payloadDirection: fromTarget") == 50
    assert [f"sequenceNumber: {i}" for i in range(50)] == [line.split("ETSILI:")[1].strip()
                                                          for line in out.splitlines() if "sequenceNumber:" in line]
    assert out.count("IP: Source 192.0.2.10 Destination 198.51.100.20") == 50


def test_pcli_content_in_etsi_out_with_the_direction_from_the_subject(tmp_path):
    """interface f -> receiver -> handover -> ETSI HI3: each agency only its CCCIDs."""
    import ipaddress
    import socket
    import threading

    from scapy.layers.inet import IP, UDP

    from mediation.handover import Agency, Handover
    from mediation.pcli import encode
    from mediation.receiver import ContentReceiver

    collector = CollectorProcess(tmp_path / "rx.etsi")
    delivery = EtsiDelivery(agency(tmp_path, collector.port, targets={CCCID: (ipaddress.ip_network("192.0.2.10/32"),)}))
    receiver = ContentReceiver([("127.0.0.1", 0)], tmp_path / "md", Handover([Agency("lea-a", frozenset({CCCID}), delivery)]))
    thread = threading.Thread(target=receiver.run, daemon=True)
    thread.start()
    out = bytes(IP(src="192.0.2.10", dst="198.51.100.20") / UDP(sport=1, dport=2) / b"out")
    back = bytes(IP(src="198.51.100.20", dst="192.0.2.10") / UDP(sport=2, dport=1) / b"back")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in (out, back, out):
                s.sendto(encode(CCCID, p), receiver.addresses[0])
            s.sendto(encode(777, out), receiver.addresses[0])     # another intercept: not this agency's
        wait_for(lambda: delivery.spools["hi3"].counts.acknowledged == 3, "three PDUs acknowledged")
    finally:
        receiver.stop()
        thread.join(10)
        collector.kill()
    pdus = [etsi.decode(p) for p in etsi.split(bytearray(collector.out.read_bytes()))]
    assert [p["payload"][1][0]["payloadDirection"] for p in pdus] == ["fromTarget", "toTarget", "fromTarget"]
    assert [p["payload"][1][0]["cCContents"][1]["iPCCContents"][1] for p in pdus] == [out, back, out]
    assert [p["pSHeader"]["sequenceNumber"] for p in pdus] == [0, 1, 2]
    # the PDU's time is the kernel's arrival time the receiver stamped, not the encoding's
    assert all(p["pSHeader"]["timeStampQualifier"] == "timeOfInterception" for p in pdus)


@dataclass(frozen=True)
class Record:
    """The fields of mediation/iri.py's IriRecord (issue 15) that the ETSI handover reads."""

    cccid: int
    stamp: float
    kind: str
    identity: dict = field(default_factory=dict)
    addresses: tuple = ()


def test_iri_goes_over_its_own_hi2_connection_with_its_own_sequence_numbers(tmp_path):
    hi3, hi2 = CollectorProcess(tmp_path / "hi3.etsi"), CollectorProcess(tmp_path / "hi2.etsi")
    delivery = EtsiDelivery(agency(tmp_path, hi3.port, hi2=("127.0.0.1", hi2.port)))
    try:
        start = Record(CCCID, time.time(), "session-start", {"radius_username": "alice"},
                       ("2001:db8:1::/64", "192.0.2.10/32"))
        call = etsi.CallIri("begin", "192.0.2.10", "198.51.100.20", b"INVITE sip:bob SIP/2.0\r\n\r\n", time.time())
        assert delivery.deliver_iri(start) and delivery.send_iri(CCCID, call)
        assert not delivery.deliver_iri(Record(999, time.time(), "session-start")), "no warrant for that CCCID"
        assert not delivery.deliver_iri(Record(CCCID, time.time(), "call-begin")), "no SIP message to carry"
        delivery.deliver(time.time(), CCCID, packet(0))
        wait_for(lambda: all(s.pending_bytes() == 0 and s.counts.acknowledged for s in delivery.spools.values()),
                 "both connections acknowledged")
    finally:
        delivery.close()
        hi3.kill()
        hi2.kill()
    iri = [etsi.decode(p) for p in etsi.split(bytearray(hi2.out.read_bytes()))]
    assert [(p["pSHeader"]["communicationIdentifier"]["communicationIdentityNumber"],
             p["pSHeader"]["sequenceNumber"], p["payload"][1][0]["iRIContents"][0]) for p in iri] == \
        [(CCCID, 0, "iPIRI"), (CCCID, 1, "iPMMIRI")]
    contents = iri[0]["payload"][1][0]["iRIContents"][1]["iPIRIContents"]
    assert (contents["accessEventType"], contents["targetUsername"]) == ("sessionStart", b"alice")
    assert contents["targetIPAddress"]["iP-value"] == ("iPBinaryAddress", bytes([192, 0, 2, 10]))
    assert [row[1] for row in received(hi3.out)[0]] == [0], "content's sequence numbers are its own"


def test_a_collector_that_never_answers_keepalives_frees_nothing_and_is_reconnected_to(tmp_path):
    """TCP taking the octets is not the agency having them: only a keep-alive response frees the spool."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    taken = []

    def swallow() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: taken.append(len(b"".join(iter(lambda: c.recv(65536), b"")))),
                             daemon=True).start()

    threading.Thread(target=swallow, daemon=True).start()
    delivery = EtsiDelivery(agency(tmp_path, server.getsockname()[1], keepalive_wait=0.5))
    try:
        for i in range(50):
            delivery.deliver(time.time(), CCCID, packet(i))
        wait_for(lambda: delivery.status()["hi3"]["connects"] >= 3, "the MD to give up on the silent collector twice")
        status = delivery.status()["hi3"]
        assert status["acknowledged"] == 0 and delivery.spools["hi3"].pending_records() == 50
        assert status["sent"] >= 100, "everything was sent again on each new connection"
        assert "no keep-alive response" in status["last_error"]
    finally:
        delivery.close()
        server.close()


def test_spool_files_are_the_owners_alone(tmp_path):
    collector = CollectorProcess(tmp_path / "rx0.etsi")
    collector.kill()
    delivery = EtsiDelivery(agency(tmp_path, collector.port, spool_max_bytes=4096))
    try:
        for i in range(100):
            delivery.deliver(time.time(), CCCID, packet(i))
    finally:
        delivery.close()
    files = list((tmp_path / "spool" / "hi3").iterdir())
    assert {p.suffix for p in files} >= {".seg", ".json", ".jsonl"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in files), [(p.name, oct(p.stat().st_mode)) for p in files]
