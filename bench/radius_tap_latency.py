"""Benchmark (issue 15): Accounting-Start -> first copy of the target's traffic.

The demo's radius network (bmv2_topo/radius_scenario.py) through a real
switch: the MD keeps a standing signalling tap on the RADIUS server; the
subject sends a UDP datagram to the peer every `--interval` ms all along.
Each cycle, the NAS (radclient) sends an Accounting-Start for a fresh user
(its own warrant and CCCID) on the subject's address, and later a Stop.
Per cycle, on the MD's clock (kernel arrival times):

- tap live: the Start's signalling copy -> the data tap's SETs done (the
  MD's keeper, over SNMPv3);
- first copy: the Start's signalling copy -> the first content copy of the
  new CCCID (what the issue asks: under 100 ms).

The signalling copy reaches the MD within microseconds of the Start on the
wire (the same switch and link), so it stands for the Start. The first copy
is late by up to one sending interval.

Baseline, in the same run, after each cycle: the same tap (a CCCID of its
own) provisioned straight over SNMPv3 from the MD's host, with no signalling
and no IRI function: its first SET sent -> its first copy. The ratio says
what following the target by her signalling costs over provisioning her
address by hand. p50 and p99 over the cycles.

    sudo .venv/bin/python -m bench.radius_tap_latency [--cycles N] [--interval MS] [--record]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import record
from bmv2_topo import radius_scenario
from bmv2_topo.bmv2_switch import resolve_target
from bmv2_topo.demo import Options, Progress, new_run
from bmv2_topo.demo_config import signalling_toml
from controller.pipeline import REPO_ROOT
from bmv2_topo.layouts import AAA, MD_ADDRESS, MD_PORT, PEER, SUBJECT

FIRST_CCCID, FIRST_BASELINE_CCCID = 6000, 7000
DIRECT = """
import sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from mediation.config import load, subject_filters
from mediation.keeper import client_for
config, cccid = load(Path(sys.argv[1])), int(sys.argv[2])
with client_for(config.iap) as client:
    if sys.argv[3] == "remove":
        client.remove(cccid, 2)
    else:
        client.uptime()  # the SNMPv3 engine discovery, before the clock starts (the MD's keeper has done it too)
        start = time.time()
        client.provision(cccid, "%s", %d, datetime.now(timezone.utc) + timedelta(seconds=600),
                         list(subject_filters("%s")))
        print(start)
""" % (MD_ADDRESS, MD_PORT, SUBJECT)
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); gap = float(sys.argv[2]) / 1000
end = time.monotonic() + float(sys.argv[3]); n = 0
while time.monotonic() < end:
    s.sendto(n.to_bytes(4, "big") + bytes(60), (sys.argv[1], 9)); n += 1; time.sleep(gap)
"""


def md_toml(cycles: int, lifetime: float) -> str:
    return signalling_toml(radius_scenario.SIGNALLING_PORT, lifetime,
                           (("radius_server", AAA, radius_scenario.CCCID_SIGNALLING),),
                           tuple((FIRST_CCCID + i, "radius_username", f"user-{i}") for i in range(cycles)))


def _until(status_file: Path, condition, what: str, limit: float = 30.0) -> dict:
    return radius_scenario.until(status_file, condition, what, limit)


def _first(status: dict, cccid: int) -> float | None:
    return next((i["first"] for i in status.get("content", {}).get("intercepts", []) if i["cccid"] == cccid), None)


def _since(status: dict, cccid: int) -> float | None:
    targets = status.get("iri", {}).get("protocols", {}).get("radius", {}).get("targets", [])
    sessions = next((t["sessions"] for t in targets if t["cccid"] == cccid), [])
    return sessions[0]["since"] if sessions else None  # the Start's arrival: the one session of each cycle


def measure(cycles: int, interval_ms: float, out: Path, progress: Progress) -> tuple[list[float], ...]:
    run = new_run(Options("radius", "netns", out, lifetime=600), progress)
    live, first, direct = [], [], []
    with contextlib.ExitStack() as stack:
        hosts, status_file, _, _ = run.bring_up(stack, md_toml(cycles, 600))
        sender = hosts["subject"].popen(sys.executable, "-c", SENDER, PEER, str(interval_ms), str(cycles * 10 + 60))
        stack.callback(sender.kill)
        for i in range(cycles):
            cccid = FIRST_CCCID + i
            nas = hosts["nas"].popen("radclient", "-r", "1", "-t", "1", f"{AAA}:1813", "acct", radius_scenario.SECRET,
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     text=True)
            nas.communicate(f"User-Name = user-{i}\nAcct-Status-Type = Start\nFramed-IP-Address = {SUBJECT}\n"
                            f"Acct-Session-Id = b{i}\n")
            status = _until(status_file, lambda s: _first(s, cccid) is not None and
                            s["keeper"]["intercepts"].get(str(cccid), {}).get("provisioned_at"), f"cycle {i}")
            since = _since(status, cccid)
            live.append((status["keeper"]["intercepts"][str(cccid)]["provisioned_at"] - since) * 1000)
            first.append((_first(status, cccid) - since) * 1000)
            progress(f"cycle {i + 1}/{cycles}: tap live {live[-1]:.1f} ms, first copy {first[-1]:.1f} ms", mark="   ")
            radius_scenario.radclient(hosts, "Stop", f"user-{i}", SUBJECT, f"b{i}")
            _until(status_file, lambda s: str(cccid) not in s["keeper"]["intercepts"], f"cycle {i}: Stop")
            baseline, md_toml_path = FIRST_BASELINE_CCCID + i, str(run.out / "md.toml")
            started = float(hosts["md"].run(sys.executable, "-c", DIRECT, md_toml_path, str(baseline), "add",
                                            cwd=REPO_ROOT).stdout)
            status = _until(status_file, lambda s: _first(s, baseline) is not None, f"cycle {i}: baseline")
            direct.append((_first(status, baseline) - started) * 1000)
            hosts["md"].run(sys.executable, "-c", DIRECT, md_toml_path, str(baseline), "remove", cwd=REPO_ROOT)
            progress(f"  baseline: provisioned straight over SNMPv3, first copy {direct[-1]:.1f} ms", mark="   ")
    return live, first, direct


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--interval", type=float, default=2.0, help="ms between the subject's datagrams")
    parser.add_argument("--record", action="store_true", help="append the figures to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.radius_tap_latency builds network namespaces: run it as root", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        live, first, direct = measure(args.cycles, args.interval, Path(tmp) / "run", Progress())
    load_after = os.getloadavg()
    target = resolve_target(None)
    rows = [("tap live (Start's copy -> SETs done)", live), ("first copy (Start's copy -> first content)", first)]
    table = ("| from the Accounting-Start's copy at the MD | p50 ms | p99 ms | median ms | max ms |\n"
             "|---|---|---|---|---|\n"
             + "".join(f"| {name} | {pct(v, .5):.1f} | {pct(v, .99):.1f} | {statistics.median(v):.1f} | "
                       f"{max(v):.1f} |\n" for name, v in rows)
             + f"| baseline: the same tap provisioned straight over SNMPv3 (first SET -> first copy) | "
               f"{pct(direct, .5):.1f} | {pct(direct, .99):.1f} | {statistics.median(direct):.1f} | "
               f"{max(direct):.1f} |\n")
    summary = {"cycles": args.cycles, "interval_ms": args.interval, "tap_live_ms": live, "first_copy_ms": first,
               "baseline_ms": direct, "first_copy_p50_over_baseline_p50": pct(first, .5) / pct(direct, .5)}
    print(table)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, list)}))
    if args.record:
        record.append(f"radius_tap_latency: Accounting-Start -> first copy, {args.cycles} cycles",
                      " ".join(["sudo .venv/bin/python -m bench.radius_tap_latency"] + (argv or sys.argv[1:])),
                      f"the demo's radius network on {target}; per cycle a fresh user's Accounting-Start by radclient "
                      f"(freeradius-utils) on the subject's address while the subject sends a datagram every "
                      f"{args.interval:g} ms; times on the MD's clock (kernel arrival stamps) from the Start's "
                      "signalling copy; p50/p99 over the cycles; goal (issue 15): first copy within 100 ms",
                      table, (record.load_line(load_before, load_after),
                              f"first copy p50 = {summary['first_copy_p50_over_baseline_p50']:.2f}x the "
                              "baseline's (the same tap provisioned by hand over SNMPv3); the first copy is late "
                              f"by up to the sending interval, {args.interval:g} ms, in both"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
