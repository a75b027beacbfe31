"""Live, through the switch: sipp hosts in namespaces on the ports of a running
switch (bmv2, or the softswitch where bmv2 is missing), the controller holding
a signalling intercept of the subject's SIP; the copies the switch sends to
the MD's port feed SipIriFunction as they arrive, and each media tap it asks
for is provisioned through the controller at once (the MD keeper's SNMPv3
path replaces that call when the IRI function is wired in). Asserted: the
MD's media copies are exactly the subject's media on the wire reference
capture, nothing of the concurrent non-target call reaches it, and the taps
are gone after the BYE. The time from the 200 OK's copy to the tap being in
place is printed (bench figures belong in BENCHMARKS.md, not in asserts).
"""
from __future__ import annotations

import ipaddress
import select
import shutil
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from bmv2_topo.bmv2_switch import Bmv2Switch, resolve_target  # noqa: E402
from bmv2_topo.netns import HostSpec, namespace_hosts  # noqa: E402
from bmv2_topo.veth import COPY_HEADROOM_MTU  # noqa: E402
from controller.model import InetAddressType, IpFilter, Mediation, Stream  # noqa: E402
from controller.service import Controller, SwitchConfig  # noqa: E402
from mediation.pcli import decode  # noqa: E402
from mediation.receiver import enable_kernel_timestamps, recv_stamped  # noqa: E402
from mediation.sip_calls import SipTarget  # noqa: E402
from mediation.sip_iri import SipIriFunction  # noqa: E402
from ptf_tests.base import MD_A, OTHER, PEER, SUBJECT, lab_topology  # noqa: E402
from tests.conftest import SWITCH_SKIP_REASON, needs_root  # noqa: E402
from tests.sip_support import FIXTURES, ip_filter_of  # noqa: E402
from tests.test_sip_netns import RTP_PACKETS, Capture, _finish, _media, _rtp_pcap, _sipp, _wait_listening  # noqa: E402

pytestmark = [needs_root, pytest.mark.root,
              pytest.mark.skipif(SWITCH_SKIP_REASON is not None, reason=SWITCH_SKIP_REASON or ""),
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (Debian sip-tester; make apt-deps)"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make apt-deps)")]

PEER_B = "198.51.100.21"   # the non-targets' callee: a second address of the peer
SPECS = [
    HostSpec("subj", port=SUBJECT.port, mac=SUBJECT.mac, addresses=(f"{SUBJECT.ipv4}/24",),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("peer", port=PEER.port, mac=PEER.mac, addresses=(f"{PEER.ipv4}/24", f"{PEER_B}/24"),
             routes=("192.0.2.0/24 dev eth0",)),
    HostSpec("othr", port=OTHER.port, mac=OTHER.mac, addresses=(f"{OTHER.ipv4}/24",),
             routes=("198.51.100.0/24 dev eth0",)),
    HostSpec("md", port=MD_A.port, mac=MD_A.mac, addresses=(f"{MD_A.ipv4}/24",), mtu=COPY_HEADROOM_MTU),
]
SIGNALLING, ALICE = 100, SipTarget(7, "alice", "example.test")
MD_PORT = 7000


def _filter(src: str | None = None, dst: str | None = None, **kw) -> IpFilter:
    return IpFilter(InetAddressType.IPV4, src_address=src and ipaddress.ip_address(src), src_length=32 if src else 0,
                    dst_address=dst and ipaddress.ip_address(dst), dst_length=32 if dst else 0, **kw)


def _mediation(cccid: int) -> Mediation:
    return Mediation(cccid, ipaddress.ip_address(MD_A.ipv4), MD_PORT, timeout=datetime.now(UTC) + timedelta(hours=1))


def _signalling_streams() -> list[Stream]:
    """The subject's SIP with the peer, fragments included (no UDP ports)."""
    s, p = SUBJECT.ipv4, PEER.ipv4
    filters = [_filter(s, p, protocol=17), _filter(p, s, protocol=17),
               _filter(s, p, protocol=6, dst_port_min=5060, dst_port_max=5060), _filter(p, s, protocol=6)]
    return [Stream(SIGNALLING, n + 1, f, True) for n, f in enumerate(filters)]


class MdPort:
    """The MD's side of the switch: every frame the switch sends to the MD's
    port, read on the switch-side veth (root namespace), decoded, and the SIP
    copies handed to the IRI function, whose tap changes go to the controller."""

    def __init__(self, interface: str, controller: Controller) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((interface, 0))
        enable_kernel_timestamps(self.sock)   # arrival as the kernel saw it, not when this thread got to it
        self.controller, self.function = controller, SipIriFunction()
        self.copies: dict[int, list[bytes]] = {SIGNALLING: [], ALICE.cccid: []}
        self.latencies: list[float] = []      # 200 OK copy in -> its tap in place, seconds
        self.errors: list[BaseException] = []
        self.first_media_at: float | None = None   # wall clock, as the wire captures' stamps
        self.media_log: list[tuple[float, bytes]] = []   # (kernel arrival, packet) of each media copy
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not select.select([self.sock], [], [], 0.1)[0]:
                    continue
                frame, _, stamp = recv_stamped(self.sock)
                arrived = time.monotonic() - (time.time() - stamp)
                eth = Ether(frame)
                if UDP not in eth or eth[UDP].dport != MD_PORT:
                    continue
                content = decode(bytes(eth[UDP].payload))
                self.copies[content.cccid].append(content.ip_packet)
                if content.cccid == ALICE.cccid:
                    self.media_log.append((stamp, content.ip_packet))
                    if self.first_media_at is None:
                        self.first_media_at = stamp
                if content.cccid == SIGNALLING:
                    self._signalling(content.ip_packet, arrived)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def _signalling(self, packet: bytes, arrived: float) -> None:
        update = self.function.feed(packet, [ALICE], time.time())
        if not update.changes:
            return
        held = sorted(ep for (cccid, ep) in self.function.calls.installed if cccid == ALICE.cccid)
        if held:
            streams = [Stream(ALICE.cccid, n + 1, ip_filter_of(f), True)
                       for n, f in enumerate(f for ep in held for f in ep.filters())]
            self.controller.provision(_mediation(ALICE.cccid), streams, actor="sip-iri")
        else:
            self.controller.remove(ALICE.cccid, actor="sip-iri")
        if any(i.reason == "200 INVITE" for i in update.iri):
            self.latencies.append(time.monotonic() - arrived)
            self.ready_at = time.time()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.sock.close()


def test_live_switch_target_call_media_copied_exactly(tmp_path):
    rtp = tmp_path / "rtp.pcap"
    _rtp_pcap(rtp)
    with namespace_hosts(SPECS, prefix="sipw") as hosts:
        ports = {spec.port: hosts[spec.name].switch_end for spec in SPECS}
        switch = Bmv2Switch(ports=ports, target=resolve_target(), workdir=tmp_path / "switch",
                            log_file=tmp_path / "switch.log")
        switch.start()
        controller = Controller([SwitchConfig("s1", switch.grpc_address, lab_topology(), election_id=(0, 1))],
                                tmp_path / "intent.db", tmp_path / "audit.jsonl")
        md = None
        try:
            controller.start()
            controller.provision(_mediation(SIGNALLING), _signalling_streams(), actor="test")
            md = MdPort(hosts["md"].switch_end, controller)
            wire_subject = Capture(hosts["subj"], "eth0", tmp_path / "subject.pcap")
            wire_other = Capture(hosts["othr"], "eth0", tmp_path / "other.pcap")
            procs = [_sipp(hosts["peer"], "-sf", str(FIXTURES / "uas_rtp.xml"), "-i", addr, "-p", "5060",
                           "-mi", addr, "-mp", port, "-rtp_echo", "-m", "1")
                     for addr, port in ((PEER.ipv4, "6000"), (PEER_B, "6100"))]
            _wait_listening(hosts["peer"], [PEER.ipv4, PEER_B], "u1")
            for ns, own, far, caller, callee in (("subj", SUBJECT.ipv4, PEER.ipv4, "alice", "bob"),
                                                 ("othr", OTHER.ipv4, PEER_B, "carol", "dave")):
                procs.append(_sipp(hosts[ns], f"{far}:5060", "-sf", str(FIXTURES / "uac_rtp.xml"),
                                   "-key", "caller", caller, "-key", "rtp", str(rtp), "-s", callee,
                                   "-i", own, "-mi", own, "-m", "1"))
            for proc, what in zip(procs[::-1], ("uac carol", "uac alice", "uas", "uas")):
                _finish(proc, what)
            subject_wire = wire_subject.packets(b"2 BYE", 2)
            other_wire = wire_other.packets(b"2 BYE", 2)
            deadline = time.monotonic() + 30   # the copies of the last frames, and the BYE's removal
            while (ALICE.cccid in controller_ids(controller) or len(md.copies[SIGNALLING]) < 6) \
                    and time.monotonic() < deadline and not md.errors:
                time.sleep(0.05)
            left = controller_ids(controller)
        finally:
            if md is not None:
                md.stop()
            controller.stop()
            switch.stop()

    assert not md.errors, md.errors
    subject_media, other_ip = _media(subject_wire), {bytes(p[IP]) for p in other_wire}
    print(f"200 OK copy -> media tap in place: {[f'{s * 1000:.0f} ms' for s in md.latencies]}; "
          f"media copies {len(md.copies[ALICE.cccid])} of {len(subject_media)} on the wire")
    assert len(subject_media) >= 2 * RTP_PACKETS
    missed = [p for p in subject_media if p not in md.copies[ALICE.cccid]]
    ok_at = next(float(p.time) for p in subject_wire if b"200 OK" in bytes(p) and b"INVITE" in bytes(p))
    first = next(float(p.time) for p in subject_wire if bytes(p[IP]) in subject_media)
    print(f"wire: 200 OK at 0, first media at {1000 * (first - ok_at):.1f} ms, the answer's tap in place at "
          f"{1000 * (md.ready_at - ok_at):.1f} ms, the first media copy at the MD at "
          f"{1000 * (md.first_media_at - ok_at):.1f} ms; missed (source, RTP seq):",
          [(IP(m).src, int.from_bytes(m[30:32], "big")) for m in missed])
    assert not missed, f"{len(missed)} media packets missed, the first {missed[:1]}"
    # Exactly the subject's media, each once, in order within each direction:
    # the two directions enter the switch on different ports, so the copies
    # of one may overtake the other's relative to the subject's wire.
    for source in {IP(m).src for m in subject_media}:
        assert [c for c in md.copies[ALICE.cccid] if IP(c).src == source] == \
            [m for m in subject_media if IP(m).src == source], f"copies from {source} differ from the wire"
    assert len(md.copies[ALICE.cccid]) == len(subject_media), "a copy that is not the subject's media"
    assert not other_ip & set(md.copies[ALICE.cccid] + md.copies[SIGNALLING])
    assert not md.function.calls.installed and ALICE.cccid not in left   # the BYE removed the taps


def controller_ids(controller: Controller) -> set[int]:
    return {intent[0].content_id for intent in controller.intercepts()}
