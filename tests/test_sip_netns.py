"""Real sipp calls with RTP between network namespaces: the SIP the subject's
link carried, as a signalling tap copies it (IP packets off the wire), goes
through sip_transport, sip_parse and the call machine; the media taps it
derives must select exactly the RTP and RTCP the subject sent and received
(the wire reference capture), and nothing of a concurrent call between two
non-targets, over UDP and over TCP. Then the same wires go, frame by frame,
through p4tap's compiled pipeline (the softswitch): the signalling copies it
makes feed the call machine, its taps are installed as intercepts, and the
copies of the target's media are exactly the subject's media on the wire.

    subject 192.0.2.10  eth0 ---- eth0  peer 198.51.100.20  (uas, media 6000)
    other   192.0.2.30  eth0 ---- eth1       198.51.100.21  (uas, media 6100)
"""
from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import rdpcap, wrpcap  # noqa: E402

from bmv2_topo.netns import HostSpec, Iface, namespace_hosts  # noqa: E402
from mediation.sip_calls import SipTarget  # noqa: E402
from mediation.sip_iri import SipIriFunction  # noqa: E402
from mediation.sip_parse import MediaEndpoint, parse  # noqa: E402
from tests.conftest import needs_root  # noqa: E402
from tests.sip_support import FIXTURES, ip_filter_of  # noqa: E402

pytestmark = [needs_root, pytest.mark.root,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (Debian sip-tester; make apt-deps)"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make apt-deps)")]

SUBJECT, OTHER, PEER, PEER_B = "192.0.2.10", "192.0.2.30", "198.51.100.20", "198.51.100.21"
# The subject's link is narrow: its INVITE (with ICE candidates, 1.8 kB) travels as
# IP fragments over UDP, and over TCP spans segments.
LINK_MTU = 1280
SPECS = [
    HostSpec("subj", ifaces=(Iface("eth0", "02:00:00:00:00:01", (f"{SUBJECT}/24",), LINK_MTU, peer=("peer", "eth0")),),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("othr", ifaces=(Iface("eth0", "02:00:00:00:00:03", (f"{OTHER}/24",), peer=("peer", "eth1")),),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("peer", ifaces=(Iface("eth0", "02:00:00:00:00:02", (f"{PEER}/24",), LINK_MTU, peer=("subj", "eth0")),
                             Iface("eth1", "02:00:00:00:00:02", (f"{PEER_B}/32",), peer=("othr", "eth0"))),
             routes=(f"{SUBJECT}/32 dev eth0 src {PEER}", f"{OTHER}/32 dev eth1 src {PEER_B}")),
]
ALICE = SipTarget(7, "alice", "example.test")   # the subject, calling: named by its P-Asserted-Identity
BOB = SipTarget(8, "bob")                        # whom it calls: named by the To of the INVITE
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


def _wait_listening(host, addresses: list[str], transport: str) -> None:
    """Until sipp listens on each address's port 5060 (a caller any sooner is refused)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = host.run("ss", "-Hln" + ("t" if transport.startswith("t") else "u"), "sport = :5060").stdout
        if all(f"{a}:5060" in out for a in addresses):
            return
        time.sleep(0.05)
    raise AssertionError(f"sipp does not listen on {addresses} port 5060")


def _finish(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}): {err.strip()[-400:]}"


def _media(packets) -> list[bytes]:
    """The call media on a wire: every UDP packet that is not SIP."""
    return [bytes(p[IP]) for p in packets if UDP in p and 5060 not in (p[UDP].sport, p[UDP].dport)]


@dataclass
class Wires:
    """One run's reference captures: the subject's link and the other's."""

    transport: str
    subject: list
    other: list

    def in_order(self) -> list:
        return sorted(self.subject + self.other, key=lambda p: float(p.time))


@pytest.fixture(scope="module", params=["u1", "t1"])
def wires(request, tmp_path_factory) -> Wires:
    """A target's call (alice -> bob) and two non-targets' (carol -> dave) at
    once, with RTP both ways, over UDP or TCP signalling; both links recorded."""
    transport, tmp_path = request.param, tmp_path_factory.mktemp(f"sipp-{request.param}")
    rtp = tmp_path / "rtp.pcap"
    _rtp_pcap(rtp)
    scenario = str(FIXTURES / "uac_rtp.xml")
    with namespace_hosts(SPECS, prefix="sip") as hosts:
        subj, othr, peer = hosts["subj"], hosts["othr"], hosts["peer"]
        wire_subject = Capture(subj, "eth0", tmp_path / "subject.pcap")
        wire_other = Capture(othr, "eth0", tmp_path / "other.pcap")
        procs = [_sipp(peer, "-sf", str(FIXTURES / "uas_rtp.xml"), "-t", transport, "-i", addr, "-p", "5060",
                       "-mi", addr, "-mp", port, "-rtp_echo", "-m", "1")
                 for addr, port in ((PEER, "6000"), (PEER_B, "6100"))]
        _wait_listening(peer, [PEER, PEER_B], transport)
        for ns, own, far, caller, callee in ((subj, SUBJECT, PEER, "alice", "bob"),
                                             (othr, OTHER, PEER_B, "carol", "dave")):
            procs.append(_sipp(ns, f"{far}:5060", "-sf", scenario, "-t", transport, "-key", "caller", caller,
                               "-key", "rtp", str(rtp), "-s", callee, "-i", own, "-mi", own, "-m", "1"))
        for proc, what in zip(procs[::-1], ("uac carol", "uac alice", "uas", "uas")):
            _finish(proc, what)
        # the call's last two messages, its BYE and the 200 to it, name CSeq 2 BYE
        return Wires(transport, wire_subject.packets(b"2 BYE", 2), wire_other.packets(b"2 BYE", 2))


@pytest.mark.parametrize("target", [ALICE, BOB], ids=["target-calls", "target-called"])
def test_taps_from_the_wires_signalling_select_the_target_media_only(wires, target):
    subject_wire, other_wire = wires.subject, wires.other
    # The signalling tap's copies: SIP of both links, in the order they were on the wire.
    function, changes, iri = SipIriFunction(), [], []
    for p in wires.in_order():
        if UDP in p and 5060 not in (p[UDP].sport, p[UDP].dport):
            continue   # media is not signalling
        update = function.feed(bytes(p[IP]), [target], float(p.time))
        changes += update.changes
        iri += update.iri
    calls = function.calls

    if wires.transport == "u1":
        assert sum(1 for p in subject_wire if p[IP].flags.MF or p[IP].frag) >= 2, "the INVITE went in fragments"
    else:
        assert sum(1 for p in subject_wire if TCP in p and p[TCP].payload) > 6, "SIP messages spanned segments"
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


# -- through the switch ---------------------------------------------------------------
# The same wires replayed, frame by frame in their order, into p4tap's committed
# pipeline (the softswitch, tests/p4tap_rig.py) wired as the PTF lab, whose hosts
# the namespaces above are (same addresses and MACs): a signalling intercept of
# the subject's SIP sends its copies to MD A; they feed the call machine, whose
# media taps are installed as intercepts before the next frame.

SIGNALLING_CCCID = 100


def _signalling_streams() -> list:
    from controller.model import Stream
    from ptf_tests.base import ip_filter
    hosts = {"subject": f"{SUBJECT}/32", "peer": f"{PEER}/32"}
    # UDP without ports: a fragment after the first has none, and a port filter would drop it
    filters = [ip_filter(src=hosts["subject"], dst=hosts["peer"], protocol=17),
               ip_filter(src=hosts["peer"], dst=hosts["subject"], protocol=17),
               ip_filter(src=hosts["subject"], dst=hosts["peer"], protocol=6, dst_port_min=5060, dst_port_max=5060),
               ip_filter(src=hosts["peer"], dst=hosts["subject"], protocol=6)]   # the UA's port is ephemeral
    return [Stream(SIGNALLING_CCCID, n + 1, f, enabled=True) for n, f in enumerate(filters)]


def _media_streams(installed) -> list:
    from controller.model import Stream
    streams = []
    for (cccid, endpoint) in sorted(installed):
        for f in endpoint.filters():
            streams.append(Stream(cccid, len(streams) + 1, ip_filter_of(f), enabled=True))
    return streams


def test_through_the_switch_pipeline_copies_exactly_the_target_media(wires):
    from datetime import UTC, datetime

    from controller.pipeline import P4TAP, Pipeline
    from controller.plan import IdAllocator, plan_intercepts
    from mediation.pcli import decode
    from ptf_tests.base import MD_A, OTHER as LAB_OTHER, PEER as LAB_PEER, SUBJECT as LAB_SUBJECT
    from ptf_tests.base import lab_topology, mediation
    from tests.p4tap_rig import P4tapRig

    if not P4TAP.exists():
        pytest.skip("compiled pipeline missing: make p4")
    pipeline, topo = Pipeline.load(), lab_topology()
    port_of = {h.mac: h.port for h in (LAB_SUBJECT, LAB_PEER, LAB_OTHER)}
    mediations = [mediation(SIGNALLING_CCCID, MD_A), mediation(ALICE.cccid, MD_A)]

    def rig_for(installed) -> P4tapRig:
        rig = P4tapRig(pipeline, topo)
        rig.install(plan_intercepts(mediations, _signalling_streams() + _media_streams(installed), topo,
                                    IdAllocator(), datetime.now(UTC)))
        return rig

    function = SipIriFunction()
    rig, copies = rig_for({}), {SIGNALLING_CCCID: [], ALICE.cccid: []}
    for p in wires.in_order():
        frame = bytes(p)
        for out in rig.send(port_of[p[Ether].src], frame).get(MD_A.port, []):
            content = decode(bytes(Ether(out)[UDP].payload))
            copies[content.cccid].append(content.ip_packet)
            if content.cccid != SIGNALLING_CCCID:
                continue
            if function.feed(content.ip_packet, [ALICE], float(p.time)).changes:
                rig = rig_for(function.calls.installed)   # the taps as they are after this message

    subject_ip = [bytes(p[IP]) for p in wires.subject]
    subject_media = _media(wires.subject)
    assert copies[ALICE.cccid] == subject_media and len(subject_media) >= 2 * RTP_PACKETS
    signalling = [ip for ip in subject_ip if ip not in subject_media]
    assert [ip for ip in copies[SIGNALLING_CCCID] if ip not in subject_media] == signalling   # its SIP, all of it
    other_ip = {bytes(p[IP]) for p in wires.other}
    assert not other_ip & set(copies[ALICE.cccid] + copies[SIGNALLING_CCCID])
    assert not function.calls.installed   # the BYE removed them
    assert function.not_sip >= len(subject_media)   # the media this signalling tap also copied, not SIP
