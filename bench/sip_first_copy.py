"""Benchmark: from a target's 200 OK to its first media copy at the MD (issue 15).

Live, as tests/test_sip_switch.py runs it (whose rig this reuses): sipp hosts
in namespaces on a running switch (bmv2, or the softswitch), a signalling
intercept of the subject's SIP, the MD's port read on the switch side, the
copies fed to SipIriFunction and its media taps provisioned through the
controller as they come (the keeper's SNMPv3 path in production: it acts
while the phone rings, so it does not change this figure unless it takes
longer than the ringing). `--calls` calls per sample, each ringing 2 s.

Per call: the time from the 200 OK on the subject's wire (tshark's stamp) to
the first copy of that call's media at the MD (the kernel's stamp on the
MD's port), p50 and p99 per sample, the median of `--repeats` samples. The
baseline, measured on the same calls, is the time from the 200 OK to the
call's first media packet on the wire: the copy can come no sooner.

    sudo .venv/bin/python -m bench.sip_first_copy [--calls N] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from scapy.layers.inet import IP, UDP

from bench import record
from bmv2_topo.bmv2_switch import Bmv2Switch, resolve_target
from bmv2_topo.netns import namespace_hosts
from controller.service import Controller, SwitchConfig
from mediation.sip_parse import SipError, parse
from ptf_tests.base import PEER, SUBJECT, lab_topology
from tests.sip_support import FIXTURES
from tests.test_sip_netns import Capture, _finish, _media, _rtp_pcap, _sipp, _wait_listening
from tests.test_sip_switch import SIGNALLING, SPECS, MdPort, _mediation, _signalling_streams


def _sip(packet) -> object | None:
    if UDP not in packet or 5060 not in (packet[UDP].sport, packet[UDP].dport):
        return None
    try:
        return parse(bytes(packet[UDP].payload))
    except SipError:
        return None


def sample(calls: int, workdir: Path) -> tuple[list[float], list[float]]:
    """(200 OK -> first media copy at the MD, 200 OK -> first media on the wire) per call, seconds."""
    rtp = workdir / "rtp.pcap"
    _rtp_pcap(rtp)
    with namespace_hosts(SPECS, prefix="sipb") as hosts:
        switch = Bmv2Switch(ports={spec.port: hosts[spec.name].switch_end for spec in SPECS}, target=resolve_target(),
                            workdir=workdir / "switch", log_file=workdir / "switch.log")
        switch.start()
        controller = Controller([SwitchConfig("s1", switch.grpc_address, lab_topology(), election_id=(0, 1))],
                                workdir / "intent.db", workdir / "audit.jsonl")
        md = None
        try:
            controller.start()
            controller.provision(_mediation(SIGNALLING), _signalling_streams(), actor="bench")
            md = MdPort(hosts["md"].switch_end, controller)
            wire = Capture(hosts["subj"], "eth0", workdir / "subject.pcap")
            uas = _sipp(hosts["peer"], "-sf", str(FIXTURES / "uas_rtp.xml"), "-i", PEER.ipv4, "-p", "5060",
                        "-mi", PEER.ipv4, "-mp", "6000", "-rtp_echo", "-m", str(calls))
            _wait_listening(hosts["peer"], [PEER.ipv4], "u1")
            uac = _sipp(hosts["subj"], f"{PEER.ipv4}:5060", "-sf", str(FIXTURES / "uac_rtp.xml"), "-key", "caller",
                        "alice", "-key", "rtp", str(rtp), "-s", "bob", "-i", SUBJECT.ipv4, "-mi", SUBJECT.ipv4,
                        "-m", str(calls), "-r", "2")
            _finish(uac, "uac")
            _finish(uas, "uas")
            frames = wire.packets(b"2 BYE", 2 * calls)
        finally:
            if md is not None:
                md.stop()
            controller.stop()
            switch.stop()
    if md.errors:
        raise RuntimeError(f"the MD side failed: {md.errors[0]!r}")
    answered: dict[str, float] = {}
    port_of: dict[str, int] = {}
    for p in frames:
        msg = _sip(p)
        if msg is None:
            continue
        if msg.method == "INVITE" and msg.media and p[IP].src == SUBJECT.ipv4:
            port_of[msg.call_id] = msg.media[0].rtp_port
        if msg.status == 200 and msg.cseq_method == "INVITE":
            answered.setdefault(msg.call_id, float(p.time))
    media = set(_media(frames))
    copies, wire_media = [], []
    for call_id, ok_at in answered.items():
        port = port_of[call_id]

        def ours(packet: bytes) -> bool:
            ip = IP(packet)
            return UDP in ip and ((ip.src, ip[UDP].sport) == (SUBJECT.ipv4, port)
                                  or (ip.dst, ip[UDP].dport) == (SUBJECT.ipv4, port))
        on_wire = [float(p.time) for p in frames if bytes(p[IP]) in media and ours(bytes(p[IP])) and float(p.time) >= ok_at]
        copied = [stamp for stamp, packet in md.media_log if stamp >= ok_at and ours(packet)]
        if not on_wire or not copied:
            raise RuntimeError(f"call {call_id}: no media on the wire or no copy at the MD")
        wire_media.append(min(on_wire) - ok_at)
        copies.append(min(copied) - ok_at)
    if len(copies) != calls:
        raise RuntimeError(f"{len(copies)} of {calls} calls answered")
    return copies, wire_media


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="calls per sample (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="samples; the median of each figure is reported")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    rows, load_before = [], os.getloadavg()
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="p4tap-sip-bench-") as tmp:
            copies, wire = sample(args.calls, Path(tmp))
        rows.append((_pct(copies, 0.5), _pct(copies, 0.99), _pct(wire, 0.5), _pct(wire, 0.99)))
        print(f"   sample {r + 1}/{args.repeats}: 200 OK -> first copy p50 {rows[-1][0] * 1e3:.1f} ms, "
              f"p99 {rows[-1][1] * 1e3:.1f} ms; -> first media on the wire p50 {rows[-1][2] * 1e3:.1f} ms", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    table = "\n".join([
        "| from the 200 OK on the subject's wire to | p50 | p99 | samples p50 (ms) | p50 / baseline |",
        "|---|---:|---:|---|---:|",
        f"| the call's first media copy at the MD | {med[0] * 1e3:.1f} ms | {med[1] * 1e3:.1f} ms "
        f"| {', '.join(f'{r[0] * 1e3:.1f}' for r in rows)} | {med[0] / med[2]:.2f}x |",
        f"| baseline: the call's first media packet on the wire | {med[2] * 1e3:.1f} ms | {med[3] * 1e3:.1f} ms "
        f"| {', '.join(f'{r[2] * 1e3:.1f}' for r in rows)} | 1.00x |",
    ])
    print(table)
    if args.record:
        record.append(
            f"sip_first_copy: a target's 200 OK to its first media copy, live on {resolve_target()}",
            f"sudo .venv/bin/python -m bench.sip_first_copy --calls {args.calls} --repeats {args.repeats} --record",
            f"{args.calls} sipp calls per sample (2 per second, each ringing 2 s, 0.5 s of RTP echoed) from the subject "
            "through the switch; the signalling copies at the MD's port drive SipIriFunction and its taps are "
            "provisioned through the controller; times from tshark's stamp of the 200 OK on the subject's wire to the "
            f"kernel's stamp of the call's first media copy at the MD's port; p50/p99 per sample, median of "
            f"{args.repeats}. Goal (issue 15): within 100 ms.",
            table,
            notes=(record.load_line(load_before, os.getloadavg()),),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
