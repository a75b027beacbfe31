"""The mediation device's disk (issue 18): a capture directory that fills up
or is read-only costs the capture files those packets, counted per CCCID,
never the handover to the agencies; a capture file stays whole records (cut
back to the last one the disk took) and goes on once there is room.

Real filesystems (a small tmpfs filled to the last byte, a read-only bind
mount); mounting needs root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mediation.capture import CaptureError, read_pcap
from mediation.handover import Agency, Handover, UdpDelivery
from mediation.pcli import encode
from mediation.receiver import ContentReceiver
from tests.test_disk_full import Disk
from tests.test_md_receiver import packets, run_receiver

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the full and read-only filesystems needs root"),
    pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)"),
]

CCCID = 7


def big(n: int, sport: int) -> list[bytes]:
    """Packets that together need more than the slack of a page (tmpfs hands out whole pages)."""
    return [p + bytes(1400) for p in packets(n, sport)]


def captured(path: Path) -> list[bytes]:
    """The IP packets of a capture file; none while it is absent or has no header yet."""
    try:
        return [p for _, p in read_pcap(path)]
    except (FileNotFoundError, CaptureError):
        return []


def wait_for(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class Collector:
    """The agency's UDP collector: what the handover delivered."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.got: list[bytes] = []

    def take(self, n: int) -> list[bytes]:
        deadline = time.monotonic() + 30
        start = len(self.got)
        while len(self.got) < start + n:
            assert time.monotonic() < deadline, f"the agency got {len(self.got) - start} of {n}"
            try:
                self.got.append(self.sock.recv(65535))
            except TimeoutError:
                continue
        return self.got[start:]


@contextmanager
def receiving(out: Path) -> Iterator[tuple[ContentReceiver, Collector]]:
    """A receiver capturing into `out` and handing CCCID over to a UDP collector;
    stopped (its files closed) before the caller unmounts `out`."""
    collector = Collector()
    try:
        agency = Agency("lea", frozenset({CCCID}), UdpDelivery(*collector.sock.getsockname()))
        receiver = ContentReceiver([("127.0.0.1", 0)], out, Handover([agency]))
        thread = run_receiver(receiver)
        try:
            yield receiver, collector
        finally:
            receiver.stop()
            thread.join(30)
            assert not thread.is_alive()
    finally:
        collector.sock.close()


def send(receiver: ContentReceiver, ips: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in ips:
            s.sendto(encode(CCCID, p), receiver.addresses[0])


def test_a_full_capture_disk_costs_the_captures_not_the_handover(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    out.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "p4tap-md-disk", str(out)], check=True)
    try:
        with receiving(out) as (receiver, collector):
            capture = out / f"cccid-{CCCID}.pcap"
            before, during, after = packets(3, 41000), big(5, 42000), packets(3, 43000)
            send(receiver, before)
            assert [encode(CCCID, p) for p in before] == collector.take(3)
            wait_for(lambda: len(captured(capture)) == 3, "the first packets were not captured")

            disk = Disk(out)
            disk.fill()
            send(receiver, during)
            assert [encode(CCCID, p) for p in during] == collector.take(5)  # handed over regardless
            wait_for(lambda: receiver.not_captured == 5, "the packets the disk refused were not counted")
            assert captured(capture) == before  # whole records: cut back to the last one written

            disk.free()
            send(receiver, after)
            assert [encode(CCCID, p) for p in after] == collector.take(3)
            wait_for(lambda: len(captured(capture)) == 6, "the capture did not go on once there was room")
            assert captured(capture) == before + after
        summary = receiver.summary()
        assert summary["not_captured"] == 5 and summary["intercepts"][0]["not_captured"] == 5
        assert summary["intercepts"][0]["packets"] == 11
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_a_read_only_capture_directory_still_hands_over(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    out.mkdir(mode=0o700)
    subprocess.run(["mount", "--bind", "-o", "ro", str(out), str(out)], check=True)
    try:
        with receiving(out) as (receiver, collector):
            sent = packets(4, 44000)
            send(receiver, sent)
            assert [encode(CCCID, p) for p in sent] == collector.take(4)
            wait_for(lambda: receiver.not_captured == 4, "the packets the disk refused were not counted")
        assert not (out / f"cccid-{CCCID}.pcap").exists()
    finally:
        subprocess.run(["umount", str(out)], check=True)
