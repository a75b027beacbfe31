"""Benchmark (issue 15): a target call's 200 OK -> the first copy of its media, through the whole MD path.

bench.sip_first_copy provisions the call's taps through the controller from
the bench's own process; this one goes the way a deployment does, as
bench.radius_tap_latency does for RADIUS: the demo's voip network on a real
switch (bmv2 where present, else the softswitch; `--target`), the IAP's
SNMPv3 TAP-MIB agent (mib_bridge) in front of the controller, and the MD
daemon (`p4tap md listen`) with a [[sip_server]] it keeps a standing
signalling tap on and one sip_user warrant per call, whose IRI function
parses the signalling copies and whose keeper provisions the media taps
over SNMPv3.

Per call n (bench/sip_phone.py; a fresh caller user-n, CCCID and media
port): the subject's phone sends an INVITE with SDP through the switch to
the SIP server (the peer, 192.0.2.21:5060), which answers 180 and, after
`--ringing` ms (default 0: the tap has no head start), 200 OK with SDP
putting its media on the peer's other address. From right after the 200
OK the subject sends RTP to the answered address and port every
`--interval` ms, until the MD has a copy; then BYE. Measured per call:

- first copy: the 200 OK leaving the server (the kernel's stamp of its
  frame on the server's wire, the switch side) -> the first copy of the
  call's media at the MD (the kernel's stamp on the MD's content socket).
  Both stamps are on this machine's one clock. Late by up to one sending
  interval;
- missed: calls whose media got no copy within 10 s (must be 0);
- left after BYE: calls whose tap the keeper still held 10 s after the BYE,
  or the IAP still showed over SNMPv3 (must be 0);
- where the time goes (bench/call_timeline.py): the INVITE's signalling
  copy leaving the switch, the IAP beginning the call's first switch write
  and the write that let the first copy through (its audit trail), the
  first copy leaving the switch, each after the 200 OK.

Baseline, in the same run, after each call: the same media taps (both
endpoints, a CCCID of its own, fresh ports, the subject's RTP already
flowing) provisioned straight over SNMPv3 from the MD's host by a client
kept open for the run (bench/snmp_direct.py), with no signalling and no IRI
function: its first SET -> its first copy. The ratio says what following
the target by her signalling costs over provisioning her media by hand.
p50 and p99 per run, the median of `--runs` runs.

    sudo .venv/bin/python -m bench.sip_tap_latency [--calls N] [--runs R] [--target bmv2|softswitch] [--record]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import call_timeline, record
from bench.radius_tap_latency import _first, _until, pct
from bench.sip_phone import caller_name
from bmv2_topo.bmv2_switch import resolve_target
from bmv2_topo.demo import Options, Progress, new_run
from bmv2_topo.demo_config import signalling_toml
from bmv2_topo.layouts import PEER, PEER_B, SUBJECT
from bmv2_topo.wire import Recorder
from controller.pipeline import REPO_ROOT

SIGNALLING_PORT, CCCID_SERVER = 7001, 90002
FIRST_CCCID, FIRST_BASELINE_CCCID = 6000, 7000
MEDIA_BASE, BASELINE_MEDIA_BASE = 20000, 30000  # call n's RTP port: base + 2n (RTCP the next)
SERVER_STREAMS = 4  # the SIP server's standing tap: UDP and TCP, to it and from it
WAIT = 10.0  # seconds for a copy, or a tap's removal, before the call counts as missed / left


def md_toml(calls: int, lifetime: float) -> str:
    return signalling_toml(SIGNALLING_PORT, lifetime, (("sip_server", PEER_B, CCCID_SERVER),),
                           tuple((FIRST_CCCID + i, "sip_user", caller_name(i)) for i in range(calls)))


class LineProcess:
    """A helper process in a namespace, driven one line in, one line out."""

    def __init__(self, host, *argv: str) -> None:
        self.proc = host.popen(sys.executable, "-m", *argv, cwd=REPO_ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, bufsize=1)
        self.what = argv[0]

    def line(self, timeout: float = 30.0) -> str:
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise RuntimeError(f"{self.what}: no answer within {timeout:.0f}s")
        out = self.proc.stdout.readline()
        if not out:
            raise RuntimeError(f"{self.what} ended (exit {self.proc.wait()})")
        return out.strip()

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.line()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class RunFigures:
    first_ms: list[float] = field(default_factory=list)
    baseline_ms: list[float] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)  # calls whose media got no copy
    left: list[int] = field(default_factory=list)  # calls whose tap outlived the BYE
    steps_ms: list[list[float]] = field(default_factory=list)  # per call copied: call_timeline.STEPS


def _held(status: dict, cccid: int) -> bool:
    return str(cccid) in status.get("keeper", {}).get("intercepts", {})


def measure(calls: int, interval_ms: float, ringing_ms: float, target: str | None, out: Path,
            progress: Progress) -> RunFigures:
    run = new_run(Options("voip", "netns", out, lifetime=600, target=target), progress)
    figures, copies = RunFigures(), {}
    with contextlib.ExitStack() as stack:
        hosts, status_file, _, _ = run.bring_up(stack, md_toml(calls, 600), SERVER_STREAMS)
        server_wire, md_wire = hosts["peer"].switch_end, hosts["md"].switch_end
        wire = Recorder([server_wire, md_wire])
        stack.callback(wire.__exit__)
        helpers = [LineProcess(hosts["peer"], "bench.sip_phone", "callee", PEER_B, PEER, SUBJECT, str(ringing_ms)),
                   LineProcess(hosts["subject"], "bench.sip_phone", "caller", SUBJECT, PEER_B, PEER, str(interval_ms)),
                   LineProcess(hosts["md"], "bench.snmp_direct", str(run.out / "md.toml"))]
        for helper in helpers:
            stack.callback(helper.stop)
            helper.line()  # listening / ready
        _, phone, direct = helpers
        for i in range(calls):
            cccid, port = FIRST_CCCID + i, MEDIA_BASE + 2 * i
            phone.ask(f"call {i} {port}")
            try:
                copies[i] = _first(_until(status_file, lambda s: _first(s, cccid) is not None, f"call {i}", WAIT),
                                   cccid)
            except RuntimeError:
                figures.missed.append(i)
            phone.ask(f"bye {i}")
            try:
                _until(status_file, lambda s: not _held(s, cccid), f"call {i}: BYE", WAIT)
                if str(cccid) in direct.ask("held").split():
                    figures.left.append(i)
            except RuntimeError:
                figures.left.append(i)
            baseline, base_port = FIRST_BASELINE_CCCID + i, BASELINE_MEDIA_BASE + 2 * i
            phone.ask(f"media {base_port}")
            started = float(direct.ask(f"add {baseline} {SUBJECT}:{base_port} {PEER}:{base_port}"))
            status = _until(status_file, lambda s: _first(s, baseline) is not None, f"call {i}: baseline")
            figures.baseline_ms.append((_first(status, baseline) - started) * 1000)
            direct.ask(f"remove {baseline}")
            phone.ask("stop")
            progress(f"call {i + 1}/{calls}: " + ("no copy" if i in figures.missed else "copy at the MD")
                     + f"; baseline first copy {figures.baseline_ms[-1]:.1f} ms", mark="   ")
        times = call_timeline.wire_times(wire.stop(), PEER_B, server_wire, md_wire, CCCID_SERVER)
    unseen = sorted(set(copies) - set(times.answered))
    if unseen:
        raise RuntimeError(f"calls {unseen}: their 200 OK is not in the server wire's capture")
    figures.first_ms = [(copies[i] - times.answered[i]) * 1000 for i in sorted(copies)]
    writes = call_timeline.switch_writes(run.out / "iap-state" / "audit.jsonl")
    figures.steps_ms = [s for i in sorted(copies)
                        if (s := call_timeline.steps(i, FIRST_CCCID + i, times, writes)) is not None]
    return figures


def _row(name: str, per_run: list[list[float]], base: float) -> str:
    p50s, p99s = [pct(v, .5) for v in per_run], [pct(v, .99) for v in per_run]
    return (f"| {name} | {statistics.median(p50s):.1f} ms | {statistics.median(p99s):.1f} ms | "
            f"{', '.join(f'{p:.1f}' for p in p50s)} | {statistics.median(p50s) / base:.2f}x |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="calls per run (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh network (default 3)")
    parser.add_argument("--interval", type=float, default=2.0, help="ms between the subject's RTP packets")
    parser.add_argument("--ringing", type=float, default=0.0, help="ms from the 180 to the 200 OK (default 0)")
    parser.add_argument("--target", choices=["bmv2", "softswitch"], default=None,
                        help="the switch (default: bmv2 where installed, else the softswitch; or P4TAP_TARGET)")
    parser.add_argument("--record", action="store_true", help="append the figures to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.sip_tap_latency builds network namespaces: run it as root", file=sys.stderr)
        return 2
    load_before, runs = os.getloadavg(), []
    for r in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(args.calls, args.interval, args.ringing, args.target, Path(tmp) / "run", Progress()))
        f = runs[-1]
        print(f"   run {r + 1}/{args.runs}: first copy p50 {pct(f.first_ms, .5):.1f} ms, p99 "
              f"{pct(f.first_ms, .99):.1f} ms; baseline p50 {pct(f.baseline_ms, .5):.1f} ms; missed "
              f"{len(f.missed)}, left after BYE {len(f.left)}", flush=True)
    load_after, target = os.getloadavg(), resolve_target(args.target)
    base = statistics.median(pct(f.baseline_ms, .5) for f in runs)
    missed, left = sum(len(f.missed) for f in runs), sum(len(f.left) for f in runs)
    table = ("| per call | p50 | p99 | runs' p50 (ms) | p50 / baseline |\n|---|---:|---:|---|---:|\n"
             + _row("200 OK leaving the SIP server -> first media copy at the MD", [f.first_ms for f in runs], base)
             + _row("baseline: the same taps provisioned straight over SNMPv3 (first SET -> first copy)",
                    [f.baseline_ms for f in runs], base)
             + f"\nCalls whose media got no copy: **{missed}** of {args.calls * args.runs}; taps left after the "
               f"BYE: **{left}**.")
    table += ("\n\n| from the 200 OK leaving the SIP server to | p50 | p99 |\n|---|---:|---:|\n"
              + "".join(f"| {step} | {statistics.median(pct([c[k] for c in f.steps_ms], .5) for f in runs):.1f} ms "
                        f"| {statistics.median(pct([c[k] for c in f.steps_ms], .99) for f in runs):.1f} ms |\n"
                        for k, step in enumerate(call_timeline.STEPS))
              + f"| the call's first media copy at the MD's content socket (the figure above) | "
                f"{statistics.median(pct(f.first_ms, .5) for f in runs):.1f} ms | "
                f"{statistics.median(pct(f.first_ms, .99) for f in runs):.1f} ms |")
    print(table)
    print(json.dumps({"calls": args.calls, "runs": args.runs, "target": target, "missed": missed, "left": left,
                      "first_copy_ms": [f.first_ms for f in runs], "baseline_ms": [f.baseline_ms for f in runs],
                      "steps_ms": [f.steps_ms for f in runs]}))
    if args.record:
        record.append(f"sip_tap_latency: a target call's 200 OK -> first media copy through the MD, on {target}",
                      " ".join(["sudo .venv/bin/python -m bench.sip_tap_latency"] + (argv or sys.argv[1:])),
                      f"the demo's voip network on {target}, the IAP's SNMPv3 agent and the MD daemon with a "
                      f"[[sip_server]] and one sip_user warrant per call; {args.calls} calls per run (bench/sip_phone"
                      f".py: the real sipp call's messages, a fresh caller and media port each), INVITE with SDP, "
                      f"200 OK with SDP {args.ringing:g} ms after the 180, RTP every {args.interval:g} ms to the "
                      "answer's media from right after the 200 OK; per call, the kernel's stamp of the 200 OK on "
                      "the server's wire -> the kernel's stamp of the first media copy at the MD; p50/p99 per run, "
                      f"median of {args.runs} runs; goal (issue 15): within 100 ms",
                      table, (record.load_line(load_before, load_after),
                              f"first copy p50 = {statistics.median(pct(f.first_ms, .5) for f in runs) / base:.2f}x "
                              "the baseline's (the same taps provisioned by hand over SNMPv3 from the MD's host); "
                              f"both late by up to the sending interval, {args.interval:g} ms"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
