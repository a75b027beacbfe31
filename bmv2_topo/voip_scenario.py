"""The demo's voip variant (issue 15): the warrant names a SIP identity, and
the MD learns the call's media from the operator's SIP signalling.

The peer is the operator's SIP service on two addresses (sipp answering,
Debian sip-tester), each a [[sip_server]] the MD keeps a standing signalling
tap on (address and protocol, no port). The subject calls as alice (a
warrant for lea-a) with RTP both ways; at the same time the other subscriber
calls as carol (no warrant) on the second address. While alice's phone
rings, the MD provisions 4242 on her offer's media endpoint over SNMPv3; the
answer's endpoint joins it; after the BYE it goes, and what the subject then
sends from the same media port reaches nobody. carol's call is parsed and
dropped: no tap, no IRI, nothing stored.
"""

from __future__ import annotations

import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.demo_config import signalling_toml
from bmv2_topo.layouts import OTHER, PEER, PEER_B, SUBJECT
from bmv2_topo.radius_scenario import SignallingError, md_status
from controller.pipeline import REPO_ROOT
from mediation.iri import IriRecord
from mediation.sip_parse import MediaEndpoint
from mediation.stream_filter import Filter

SIGNALLING_PORT = 7001
CCCID_SERVER, CCCID_SERVER_B, CCCID_ALICE, CCCID_ERIN = 90002, 90003, 4242, 4243
SCENARIOS = REPO_ROOT / "tests" / "fixtures" / "sip"   # sipp's caller and callee with RTP (uac_rtp, uas_rtp)
MEDIA_PORT, MEDIA_PORT_B = 6000, 6100
RTP_PACKETS = 25
# what the report judges: alice's call media, both endpoints both ways (lea-b's warrant is on erin, who never calls)
INTERCEPTS: dict[int, tuple[Filter, ...]] = {
    CCCID_ALICE: MediaEndpoint(SUBJECT, MEDIA_PORT, MEDIA_PORT + 1).filters()
    + MediaEndpoint(PEER, MEDIA_PORT, MEDIA_PORT + 1).filters()}
AGENCIES = {"lea-a": frozenset({CCCID_ALICE}), "lea-b": frozenset({CCCID_ERIN})}
SIGNALLING_STREAMS = 8  # per SIP server: UDP and TCP, to it and from it
WAIT = 60.0
WHAT_THE_MD_DOES = (f"it provisions standing signalling taps {CCCID_SERVER} and {CCCID_SERVER_B} on the SIP servers "
                    f"{PEER} and {PEER_B} over SNMPv3 (copies to its port {SIGNALLING_PORT}); warrants: "
                    f"sip:alice@example.test ({CCCID_ALICE}, lea-a), erin ({CCCID_ERIN}, lea-b)")


def md_toml(lifetime: float) -> str:
    return signalling_toml(SIGNALLING_PORT, lifetime,
                           (("sip_server", PEER, CCCID_SERVER), ("sip_server", PEER_B, CCCID_SERVER_B)),
                           ((CCCID_ALICE, "sip_uri", "sip:alice@example.test"), (CCCID_ERIN, "sip_user", "erin")))


@dataclass
class SignallingReport:
    tap_live: bool = False            # the MD held alice's media tap active during her call
    iri: dict[str, list[str]] = field(default_factory=dict)  # agency -> kinds of the records it got
    discarded_non_target: int = 0
    after_bye_sent: int = 0
    after_bye_captured: int = 0
    problems: list[str] = field(default_factory=list)


def _rtp_pcap(path: Path) -> None:
    """0.5 s of PCMA for sipp's play_pcap_audio (it sends the payloads from its own media port)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    frames = []
    for i in range(RTP_PACKETS):
        rtp = struct.pack("!BBHII", 0x80, 8, i + 1, 160 * i, 0x5150) + bytes([0xD5]) * 160
        frame = Ether() / IP(src=SUBJECT, dst=PEER) / UDP(sport=MEDIA_PORT, dport=MEDIA_PORT) / rtp
        frame.time = 1.0 + i * 0.02
        frames.append(frame)
    wrpcap(str(path), frames)


def _until(condition, status_file: Path, what: str, procs: list[subprocess.Popen] = ()) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status = md_status(status_file)
        if status and condition(status):
            return status
        if procs and all(p.poll() is not None for p in procs):
            break   # the calls are over: it will not happen now
        time.sleep(0.05)
    raise SignallingError(f"the MD did not {what}; see md.log")


def _alice(status: dict) -> dict:
    return status.get("keeper", {}).get("intercepts", {}).get(str(CCCID_ALICE), {})


def _sip(status: dict) -> dict:
    return status.get("iri", {}).get("protocols", {}).get("sip", {})


def _sipp(host, *args: str) -> subprocess.Popen:
    return host.popen("sipp", *args, "-nostdin", "-timeout", "30", "-timeout_error",
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _listening(host, addresses: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = host.run("ss", "-Hlnu", "sport = :5060").stdout
        if all(f"{a}:5060" in out for a in addresses):
            return
        time.sleep(0.05)
    raise SignallingError(f"sipp does not listen on {addresses} port 5060")


def start(hosts: dict, status_file: Path, progress, out_dir: Path) -> SignallingReport:
    """alice's call and carol's at once, until both are over; alice's tap seen live while hers lasts."""
    out = SignallingReport()
    rtp = out_dir / "rtp.pcap"
    _rtp_pcap(rtp)
    peer = hosts["peer"]
    servers = [_sipp(peer, "-sf", str(SCENARIOS / "uas_rtp.xml"), "-i", addr, "-p", "5060", "-mi", addr,
                     "-mp", str(port), "-rtp_echo", "-m", "1")
               for addr, port in ((PEER, MEDIA_PORT), (PEER_B, MEDIA_PORT_B))]
    _listening(peer, (PEER, PEER_B))
    progress(f"subject: sipp calls bob at {PEER} as alice (warrant {CCCID_ALICE}), with RTP; other: calls dave at "
             f"{PEER_B} as carol (no warrant)")
    callers = [_sipp(hosts[host], f"{far}:5060", "-sf", str(SCENARIOS / "uac_rtp.xml"), "-key", "caller", caller,
                     "-key", "rtp", str(rtp), "-s", callee, "-i", own, "-mi", own, "-m", "1")
               for host, own, far, caller, callee in (("subject", SUBJECT, PEER, "alice", "bob"),
                                                     ("other", OTHER, PEER_B, "carol", "dave"))]
    procs = servers + callers
    try:
        _until(lambda s: _alice(s).get("state") == "active", status_file, "provision alice's media tap during her call",
               procs)
        out.tap_live = True
        progress(f"MD: alice's call: {CCCID_ALICE} provisioned on its media endpoints over SNMPv3", mark="   ")
    finally:
        for proc, what in zip(procs, ("callee at " + PEER, "callee at " + PEER_B, "alice's call", "carol's call")):
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode != 0:
                out.problems.append(f"sipp ({what}) failed ({proc.returncode}): {err.strip()[-300:]}")
    return out


def stop(hosts: dict, status_file: Path, out: SignallingReport, progress) -> None:
    """alice's tap is gone after her BYE; what the subject sends from her media port then is copied to nobody."""
    status = _until(lambda s: "keeper" in s and str(CCCID_ALICE) not in s["keeper"]["intercepts"]
                    and _sip(s).get("calls", 1) == 0, status_file, "remove alice's tap after her BYE")
    before, seen = _captured(status), status["iri"]["received"]
    out.after_bye_sent = 5
    send = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[1],%d))\n"
            "for _ in range(%d): s.sendto(bytes(172),(sys.argv[2],%d))") % (MEDIA_PORT, out.after_bye_sent,
                                                                          MEDIA_PORT)
    hosts["subject"].run("python3", "-c", send, SUBJECT, PEER, check=False)
    # the SIP server's signalling tap copies them too (UDP to it): once the IRI function has them, any content
    # copies of them have arrived as well (the same switch and MD link)
    status = _until(lambda s: s["iri"]["received"] >= seen + out.after_bye_sent, status_file,
                    "see the marker datagrams")
    out.after_bye_captured = _captured(status) - before
    out.discarded_non_target = _sip(status).get("discarded_non_target", 0)
    progress(f"MD: alice's tap removed at her BYE; {out.after_bye_sent} datagrams from her media port after it, "
             f"{out.after_bye_captured} copied; {out.discarded_non_target} SIP messages of carol's call parsed and "
             "dropped", mark="   ")


def _captured(status: dict) -> int:
    return sum(i["packets"] for i in status.get("content", {}).get("intercepts", []) if i["cccid"] == CCCID_ALICE)


def judge(out: SignallingReport, run_dir: Path) -> None:
    """Call IRI to lea-a only; nothing of carol's call or of the signalling kept anywhere."""
    for name in AGENCIES:
        records = [IriRecord.from_json(line) for f in sorted((run_dir / name).glob("iri-*.jsonl"))
                   for line in f.read_bytes().splitlines()]
        out.iri[name] = [r.kind for r in records]
    kinds = out.iri.get("lea-a", [])
    if not kinds or kinds[0] != "call-begin" or kinds.count("call-answer") != 1 or kinds.count("call-end") != 1:
        out.problems.append(f"lea-a got IRI {kinds}, not alice's call begin, answer and end")
    if out.iri.get("lea-b"):
        out.problems.append(f"lea-b got IRI of another warrant: {out.iri['lea-b']}")
    if not out.tap_live:
        out.problems.append("alice's media tap was never live")
    if out.after_bye_captured:
        out.problems.append(f"{out.after_bye_captured} packets of the subject were copied after the BYE")
    if out.discarded_non_target < 4:
        out.problems.append(f"only {out.discarded_non_target} SIP messages of carol's call were dropped")
    for f in run_dir.rglob("*"):
        if f.is_file() and f.suffix in (".pcap", ".jsonl") and b"carol" in f.read_bytes():
            out.problems.append(f"{f} holds something of carol's call")
    if list(run_dir.rglob(f"cccid-{CCCID_SERVER}.pcap")) + list(run_dir.rglob(f"cccid-{CCCID_SERVER_B}.pcap")):
        out.problems.append("signalling copies were stored")


def render(out: SignallingReport) -> list[str]:
    lines = [f"  signalling: alice's media tap {'live during her call' if out.tap_live else 'never live'}"]
    lines += [f"    IRI to {name}: {', '.join(kinds) or 'nothing'}" for name, kinds in out.iri.items()]
    lines.append(f"    after the BYE: {out.after_bye_sent} packets from her media port, {out.after_bye_captured} "
                 f"copied; carol: {out.discarded_non_target} SIP messages parsed and dropped, nothing kept")
    return lines
