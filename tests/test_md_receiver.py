"""The mediation device's content receiver and HI3 handover, on loopback:
real UDP sockets (IPv4 and IPv6), real capture files read back by our reader
and by tshark, real agency collectors (a UDP socket, a TCP listener)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from mediation.capture import read_pcap
from mediation.handover import Agency, FileDelivery, Handover, TcpDelivery, UdpDelivery, read_records
from mediation.pcli import encode
from mediation.receiver import ContentReceiver
from tests.snmp_support import ipv6_loopback


def packets(n: int, sport: int = 40000) -> list[bytes]:
    return [bytes(IP(src="192.0.2.10", dst="198.51.100.20") / UDP(sport=sport + i, dport=5004) / bytes(20 + i))
            for i in range(n)]


def run_receiver(receiver: ContentReceiver) -> threading.Thread:
    thread = threading.Thread(target=receiver.run, daemon=True)
    thread.start()
    return thread


def finish(receiver: ContentReceiver, thread: threading.Thread, expect: int) -> dict:
    """Stop once `expect` datagrams were counted (or nothing more arrives)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and \
            sum(s.packets for s in receiver.stats.values()) + receiver.malformed < expect:
        time.sleep(0.02)
    receiver.stop()
    thread.join(10)
    assert not thread.is_alive()
    return receiver.summary()


def test_demultiplexes_ipv4_and_ipv6_senders_into_one_capture_per_cccid(tmp_path):
    listen = [("127.0.0.1", 0)] + ([("::1", 0)] if ipv6_loopback() else [])
    receiver = ContentReceiver(listen, tmp_path)
    thread = run_receiver(receiver)
    v4, v6 = receiver.addresses[0], receiver.addresses[-1]
    first, second = packets(5), packets(3, sport=41000)
    inner_v6 = bytes(IPv6(src="2001:db8:1::10", dst="2001:db8:2::20") / TCP(sport=1, dport=2))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4:
        for p in first:
            s4.sendto(encode(101, p), v4)
        s4.sendto(b"\x00\x00\x00\x01" + bytes(30), v4)  # version nibble 0: counted as malformed, not captured
        s4.sendto(b"\x00\x01", v4)
    family = socket.AF_INET6 if ":" in v6[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s6:
        for p in second + [inner_v6]:
            s6.sendto(encode(202, p), v6)
    summary = finish(receiver, thread, expect=5 + 2 + 4)
    counted = {i["cccid"]: (i["packets"], i["bytes"]) for i in summary["intercepts"]}
    assert counted == {101: (5, sum(map(len, first))), 202: (4, sum(map(len, second + [inner_v6])))}
    assert summary["malformed"] == 2 and summary["not_written"] == 0
    assert [p for _, p in read_pcap(tmp_path / "cccid-101.pcap")] == first
    assert [p for _, p in read_pcap(tmp_path / "cccid-202.pcap")] == second + [inner_v6]
    stamps = [t for t, _ in read_pcap(tmp_path / "cccid-101.pcap")]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) < 60
    senders = {i["cccid"]: set(i["sources"]) for i in summary["intercepts"]}
    assert senders[101] == {"127.0.0.1"}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make setup installs it)")
def test_tshark_reads_the_capture_files(tmp_path):
    receiver = ContentReceiver([("127.0.0.1", 0)], tmp_path)
    thread = run_receiver(receiver)
    sent = packets(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in sent:
            s.sendto(encode(7, p), receiver.addresses[0])
    finish(receiver, thread, expect=4)
    out = subprocess.run(["tshark", "-r", str(tmp_path / "cccid-7.pcap"), "-T", "fields", "-e", "ip.src", "-e",
                          "udp.srcport", "-e", "udp.dstport"], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:4] == [f"192.0.2.10\t{40000 + i}\t5004" for i in range(4)]


def test_each_agency_gets_exactly_its_cccids_by_file_udp_and_tcp(tmp_path):
    udp_collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_collector.bind(("127.0.0.1", 0))
    udp_collector.settimeout(0.5)
    tcp_listener = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def collect_tcp() -> None:
        conn, _ = tcp_listener.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    tcp_thread = threading.Thread(target=collect_tcp, daemon=True)
    tcp_thread.start()
    handover = Handover([
        Agency("lea-a", frozenset({1, 2}), FileDelivery(tmp_path / "lea-a")),
        Agency("lea-b", frozenset({2, 3}), UdpDelivery(*udp_collector.getsockname())),
        Agency("lea-c", frozenset({3}), TcpDelivery(*tcp_listener.getsockname())),
    ])
    receiver = ContentReceiver([("127.0.0.1", 0)], tmp_path / "md", handover)
    thread = run_receiver(receiver)
    sent = {1: packets(3, 42000), 2: packets(4, 43000), 3: packets(2, 44000), 4: packets(1, 45000)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for cccid, ps in sent.items():
            for p in ps:
                s.sendto(encode(cccid, p), receiver.addresses[0])
    summary = finish(receiver, thread, expect=10)
    tcp_thread.join(5)
    got_udp = []
    try:
        while True:
            data = udp_collector.recv(65535)
            got_udp.append((int.from_bytes(data[:4], "big"), data[4:]))
    except socket.timeout:
        pass
    udp_collector.close()
    tcp_listener.close()

    # lea-a: files for 1 and 2 only
    assert sorted(p.name for p in (tmp_path / "lea-a").iterdir()) == ["cccid-1.pcap", "cccid-2.pcap"]
    for cccid in (1, 2):
        assert [p for _, p in read_pcap(tmp_path / "lea-a" / f"cccid-{cccid}.pcap")] == sent[cccid]
    # lea-b: 2 and 3 over UDP, as pcli datagrams
    assert got_udp == [(c, p) for c in (2, 3) for p in sent[c]]
    # lea-c: 3 only, over TCP as length-prefixed pcli records
    assert read_records(bytes(received)) == [(3, p) for p in sent[3]]
    # the MD itself keeps everything, also CCCID 4 that no agency is authorised for
    assert sorted(p.name for p in (tmp_path / "md").glob("*.pcap")) == [f"cccid-{c}.pcap" for c in (1, 2, 3, 4)]
    assert summary["unclaimed"] == 1
    counts = {a["name"]: {int(c): n["packets"] for c, n in a["counts"].items()} for a in summary["agencies"]}
    assert counts == {"lea-a": {1: 3, 2: 4}, "lea-b": {2: 4, 3: 2}, "lea-c": {3: 2}}


def test_tcp_handover_counts_what_it_could_not_deliver(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    listener.close()  # nobody listens there now
    handover = Handover([Agency("lea", frozenset({9}), TcpDelivery(*address, retry_every=60))])
    for p in packets(3):
        handover.dispatch(time.time(), 9, p)
    handover.close()
    assert [(a["name"], a["counts"]["9"]) for a in handover.summary()] == \
        [("lea", {"packets": 0, "bytes": 0, "failed": 3, "iri": 0, "iri_failed": 0})]


class BlockedDelivery:
    """An agency (or disk) that does not take anything until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.got: list[bytes] = []

    def deliver(self, stamp: float, cccid: int, packet: bytes) -> bool:
        self.release.wait()
        self.got.append(packet)
        return True

    def flush(self) -> None:
        pass

    def describe(self) -> str:
        return "blocked"

    def close(self) -> None:
        pass


def test_a_slow_writer_never_blocks_the_socket_reader(tmp_path, caplog):
    slow = BlockedDelivery()
    receiver = ContentReceiver([("127.0.0.1", 0)], tmp_path, Handover([Agency("slow", frozenset({5}), slow)]),
                               queue_size=8)
    thread = run_receiver(receiver)
    sent = packets(200)
    with caplog.at_level(logging.WARNING, logger="p4tap.md"), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in sent:
            s.sendto(encode(5, p), receiver.addresses[0])
        deadline = time.monotonic() + 10
        while receiver.stats.get(5) is None or receiver.stats[5].packets < 200:
            assert time.monotonic() < deadline, "the reader stopped reading while the writer was blocked"
            time.sleep(0.02)
    # every datagram was received and counted while the writer was stuck on its first packet
    assert receiver.stats[5].packets == 200
    dropped = receiver.dropped
    assert dropped >= 200 - 8 - 2, "more fitted than the queue (8) and the writer's hands hold"
    assert "capture writer is behind" in caplog.text
    slow.release.set()
    summary = finish(receiver, thread, expect=200)
    assert summary["not_written"] == dropped
    written = [p for _, p in read_pcap(tmp_path / "cccid-5.pcap")]
    assert written == slow.got and len(written) == 200 - dropped
    remaining = iter(sent)
    assert all(any(p == q for q in remaining) for p in written), "written out of order"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN) to pass net.core.rmem_max")
def test_the_content_socket_buffers_a_burst_beyond_rmem_max(tmp_path) -> None:
    """A burst of copies (a TCP transfer through two switches at once) while
    the MD is descheduled must wait in the socket, not be dropped there:
    SO_RCVBUF alone stops at net.core.rmem_max (208 KiB by default; a loaded
    end-to-end run once missed 41 of 357 copies of a 200 kB TCP burst)."""
    from mediation.receiver import RECEIVE_BUFFER

    receiver = ContentReceiver([("127.0.0.1", 0)], tmp_path)
    try:
        for sock in receiver.socks:  # the kernel reports twice what was set (its bookkeeping share)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= RECEIVE_BUFFER
    finally:
        for sock in receiver.socks:
            sock.close()
