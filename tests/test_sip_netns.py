"""Real sipp calls with RTP between network namespaces: the SIP the subject's
link carried, as a signalling tap copies it (IP packets off the wire), goes
through sip_transport, sip_parse and the call machine; the media taps it
derives must select exactly the RTP and RTCP the subject sent and received
(the wire reference capture), and nothing of a concurrent call between two
non-targets, over UDP and over TCP.

    subject 192.0.2.10  eth0 ---- eth0  peer 198.51.100.20  (uas, media 6000)
    other   192.0.2.30  eth0 ---- eth1       198.51.100.21  (uas, media 6100)
"""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import rdpcap, wrpcap  # noqa: E402

from bmv2_topo.netns import HostSpec, Iface, namespace_hosts  # noqa: E402
from mediation.sip_calls import SipCalls, SipTarget  # noqa: E402
from mediation.sip_parse import MediaEndpoint, parse  # noqa: E402
from mediation.sip_transport import SignallingStreams  # noqa: E402
from tests.conftest import needs_root  # noqa: E402
from tests.sip_support import FIXTURES  # noqa: E402

pytestmark = [needs_root, pytest.mark.root,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (Debian sip-tester; make apt-deps)"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make apt-deps)")]

SUBJECT, OTHER, PEER, PEER_B = "192.0.2.10", "192.0.2.30", "198.51.100.20", "198.51.100.21"
SPECS = [
    HostSpec("subj", ifaces=(Iface("eth0", "02:00:00:00:51:01", (f"{SUBJECT}/24",), peer=("peer", "eth0")),),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("othr", ifaces=(Iface("eth0", "02:00:00:00:51:03", (f"{OTHER}/24",), peer=("peer", "eth1")),),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("peer", ifaces=(Iface("eth0", "02:00:00:00:51:02", (f"{PEER}/24",), peer=("subj", "eth0")),
                             Iface("eth1", "02:00:00:00:51:04", (f"{PEER_B}/32",), peer=("othr", "eth0"))),
             routes=(f"{SUBJECT}/32 dev eth0 src {PEER}", f"{OTHER}/32 dev eth1 src {PEER_B}")),
]
ALICE = SipTarget(7, "alice", "example.test")
RTP_PACKETS = 25


def _rtp_pcap(path) -> None:
    """25 PCMA packets (0.5 s) for sipp's play_pcap_audio."""
    frames = []
    for i in range(RTP_PACKETS):
        rtp = struct.pack("!BBHII", 0x80, 8, i + 1, 160 * i, 0x5150) + bytes([0xD5]) * 160
        frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=SUBJECT, dst=PEER) / \
            UDP(sport=6000, dport=6000) / rtp
        frame.time = 1.0 + i * 0.02
        frames.append(frame)
    wrpcap(str(path), frames)


class Capture:
    """tshark on one interface of a host: the wire reference."""

    def __init__(self, host, iface: str, path) -> None:
        self.path = path
        self.proc = host.popen("tshark", "-q", "-i", iface, "-w", str(path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:   # tshark says so once it captures
            if "Capturing on" in line:
                break
        else:
            raise AssertionError(f"tshark did not start on {iface}")

    def packets(self, done: bytes, count: int) -> list:
        """What it captured, once `count` frames holding `done` are in the file
        (dumpcap flushes it every 100 ms; a stop any sooner could lose the tail)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                frames = rdpcap(str(self.path))
            except Exception:  # noqa: BLE001 - a block half written: read again
                frames = []
            if sum(done in bytes(f) for f in frames) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        return [p for p in frames if IP in p]


def _sipp(host, *args: str) -> subprocess.Popen:
    return host.popen("sipp", *args, "-nostdin", "-timeout", "30", "-timeout_error",
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}): {err.strip()[-400:]}"


def _media(packets) -> list[bytes]:
    """The call media on a wire: every UDP packet that is not SIP."""
    return [bytes(p[IP]) for p in packets if UDP in p and 5060 not in (p[UDP].sport, p[UDP].dport)]


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_target_call_media_tapped_exactly_non_target_call_not(tmp_path, transport):
    rtp = tmp_path / "rtp.pcap"
    _rtp_pcap(rtp)
    scenario = str(FIXTURES / "uac_rtp.xml")
    with namespace_hosts(SPECS, prefix="sip") as hosts:
        subj, othr, peer = hosts["subj"], hosts["othr"], hosts["peer"]
        wire_subject = Capture(subj, "eth0", tmp_path / "subject.pcap")
        wire_other = Capture(othr, "eth0", tmp_path / "other.pcap")
        uas = [_sipp(peer, "-sf", str(FIXTURES / "uas_rtp.xml"), "-t", transport, "-i", addr, "-p", "5060", "-mi", addr, "-mp", port,
                     "-rtp_echo", "-m", "1") for addr, port in ((PEER, "6000"), (PEER_B, "6100"))]
        for ns, own, far, caller, callee in ((subj, SUBJECT, PEER, "alice", "bob"), (othr, OTHER, PEER_B, "carol", "dave")):
            uac = _sipp(ns, f"{far}:5060", "-sf", scenario, "-t", transport, "-key", "caller", caller,
                        "-key", "rtp", str(rtp), "-s", callee, "-i", own, "-mi", own, "-m", "1")
            uac.name = f"uac {caller}"
            uas.append(uac)
        for proc in uas[2:]:
            _finish(proc, proc.name)
        for proc in uas[:2]:
            _finish(proc, "uas")
        # the call's last two messages, its BYE and the 200 to it, name CSeq 2 BYE
        subject_wire, other_wire = wire_subject.packets(b"2 BYE", 2), wire_other.packets(b"2 BYE", 2)

    # The signalling tap's copies: SIP of both links, in the order they were on the wire.
    streams, calls, changes, iri = SignallingStreams(), SipCalls(), [], []
    for p in sorted(subject_wire + other_wire, key=lambda p: float(p.time)):
        ip = bytes(p[IP])
        if UDP in p and 5060 not in (p[UDP].sport, p[UDP].dport):
            continue   # media is not signalling
        for payload in streams.feed(ip, float(p.time)):
            update = calls.handle(parse(payload.data), [ALICE], float(p.time))
            changes += update.changes
            iri += update.iri

    provisioned = [c.endpoint for c in changes if c.op == "provision"]
    assert sorted(provisioned) == [MediaEndpoint(SUBJECT, 6000, 6001), MediaEndpoint(PEER, 6000, 6001)]
    assert sorted(c.endpoint for c in changes if c.op == "remove") == sorted(provisioned)   # gone after BYE
    assert not calls.calls and not calls.installed
    assert {i.call_id for i in iri} == {parse(iri[0].message).call_id} and iri[0].kind == "begin"
    assert [i.kind for i in iri].count("end") == 1 and b"carol" not in b"".join(i.message for i in iri)

    filters = [f for ep in provisioned for f in ep.filters()]
    subject_media, other_media = _media(subject_wire), _media(other_wire)
    assert len(subject_media) >= 2 * RTP_PACKETS, "sipp sent and echoed the RTP"
    tapped = [pkt for pkt in subject_media + other_media if any(f.matches(pkt) for f in filters)]
    assert tapped == subject_media                 # all the subject sent and received, nothing else
    assert not any(f.matches(bytes(p[IP])) for f in filters for p in other_wire)
