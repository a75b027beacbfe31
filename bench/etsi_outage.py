"""Issue 16's goal, measured: an agency outage of 5 minutes at the demo's rates
delivers 100 % afterwards, in order, with no duplicates beyond what the
sequence numbers let the agency discard.

One run: the MD's ETSI handover (mediation/etsi_delivery.py, in this process)
is fed packets at `--rate` per second (the demo's CCCID 4242 carries about 110
packets/s of 800 octets on average, 4243 another 50: 200/s rounds that up);
the agency's collector (mediation/etsi_collector.py, its own process) is
SIGKILLed after `--before` seconds, restarted `--outage` seconds later, and the
feed goes on `--after` seconds more. Then everything the collector wrote is
decoded and checked as an agency would: each PDU the next sequence number or a
repeat of one already seen (same packet), none missing.

Baseline in the same run: the same feed with no outage, its delivery delay
(last packet fed -> all acknowledged); the outage run's catch-up time (collector
back -> spool empty) is reported beside it, and the ratio of the drain rate to
the feed rate.

    python -m bench.etsi_outage --outage 300 --repeats 3 --record
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import record
from mediation import etsi
from mediation.etsi_delivery import EtsiAgency, EtsiDelivery

CCCID = 4242
ROOT = Path(__file__).resolve().parent.parent


def collector(out: Path, port: int = 0) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "mediation.etsi_collector", "--listen", f"127.0.0.1:{port}",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline().split()[-1])


def feed(delivery: EtsiDelivery, start: int, seconds: float, rate: float, size: int,
         catch_up: dict | None = None) -> int:
    """Packets start.. at `rate` per second for `seconds`, paced on the clock; returns the next index.
    With `catch_up`, notes when the spool first holds less than one second of feed (the backlog gone)."""
    began, index = time.monotonic(), start
    spool = delivery.spools["hi3"]
    while (elapsed := time.monotonic() - began) < seconds:
        if catch_up is not None and "at" not in catch_up and spool.pending_bytes() < rate * size:
            catch_up["at"] = time.monotonic()
        due = start + int(elapsed * rate)
        while index < due:
            delivery.deliver(time.time(), CCCID, index.to_bytes(4, "big") + bytes(size - 4))
            index += 1
        time.sleep(0.005)
    return index


def agency_view(files: list[Path], expected: int) -> dict:
    """What the agency makes of what it received: unique, repeats (discarded), gaps, order."""
    seen: dict[int, int] = {}
    repeats = misordered = 0
    for path in files:
        buffer = bytearray(path.read_bytes())
        for pdu in etsi.split(buffer):
            value = etsi.decode(pdu)
            seq = value["pSHeader"]["sequenceNumber"]
            index = int.from_bytes(value["payload"][1][0]["cCContents"][1]["iPCCContents"][1][:4], "big")
            if seq in seen:
                repeats += 1
                misordered += seen[seq] != index
            elif seq != len(seen) or index != seq:
                misordered += 1
                seen[seq] = index
            else:
                seen[seq] = index
    return {"expected": expected, "delivered": len(seen), "repeats": repeats, "misordered": misordered,
            "complete": len(seen) == expected and misordered == 0}


def run(rate: float, size: int, before: float, outage: float, after: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first, port = collector(tmp / "rx1.etsi")
        delivery = EtsiDelivery(EtsiAgency("lea-a", ("127.0.0.1", port), {CCCID: "LEA-A-17"}, "p4tap", "iap1",
                                           tmp / "spool", keepalive=5.0, keepalive_wait=5.0))
        spool = delivery.spools["hi3"]
        second = None
        try:
            index = feed(delivery, 0, before, rate, size)
            if outage:
                first.send_signal(signal.SIGKILL)
                first.wait()
                index = feed(delivery, index, outage, rate, size)
                backlog = spool.pending_bytes()
                second, _ = collector(tmp / "rx2.etsi", port)
                back, catch = time.monotonic(), {}
                index = feed(delivery, index, after, rate, size, catch)
            else:
                backlog, back, catch = 0, time.monotonic(), {}
                index = feed(delivery, index, after, rate, size)
            fed_all = time.monotonic()
            while spool.pending_bytes():
                time.sleep(0.01)
            done = time.monotonic()
            caught_up = catch.get("at", done) - back if outage else None
        finally:
            delivery.close()
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        view = agency_view([p for p in (tmp / "rx1.etsi", tmp / "rx2.etsi") if p.exists()], index)
        return {**view, "backlog_octets": backlog, "tail_delay": done - fed_all,
                "catch_up": caught_up, "connects": delivery.status()["hi3"]["connects"]}


def main() -> int:
    parser = argparse.ArgumentParser(description="ETSI handover: an agency outage, then catch-up")
    parser.add_argument("--rate", type=float, default=200.0, help="packets per second (default 200)")
    parser.add_argument("--size", type=int, default=800, help="octets per packet (default 800)")
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=300.0)
    parser.add_argument("--after", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the figures to BENCHMARKS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    baseline = [run(args.rate, args.size, args.before, 0, args.after) for _ in range(args.repeats)]
    outages = [run(args.rate, args.size, args.before, args.outage, args.after) for _ in range(args.repeats)]
    load_after = os.getloadavg()
    for name, runs in (("baseline", baseline), ("outage", outages)):
        for r in runs:
            print(name, r, flush=True)
    ok = all(r["complete"] for r in baseline + outages)
    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    table = "\n".join([
        "| run | packets fed | delivered | repeats discarded | misordered | backlog at return | catch-up | tail delay |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} #{i + 1} | {r['expected']} | {r['delivered']} ({100 * r['delivered'] / r['expected']:.1f} %) | "
          f"{r['repeats']} | {r['misordered']} | {r['backlog_octets'] / 1e6:.1f} MB | "
          f"{'-' if r['catch_up'] is None else format(r['catch_up'], '.1f') + ' s'} | {r['tail_delay']:.2f} s |"
          for name, runs in (("no outage", baseline), (f"{args.outage:g} s outage", outages))
          for i, r in enumerate(runs)),
        "",
        f"Median tail delay (last packet fed -> all acknowledged): {med(baseline, 'tail_delay'):.2f} s without an "
        f"outage, {med(outages, 'tail_delay'):.2f} s after one (ratio {med(outages, 'tail_delay') / max(med(baseline, 'tail_delay'), 1e-3):.1f}x): "
        f"the {med(outages, 'backlog_octets') / 1e6:.0f} MB backlog ({args.outage:g} s of feed) drained in "
        f"{med(outages, 'catch_up'):.1f} s (median) while the feed went on: "
        f"{args.outage / max(med(outages, 'catch_up'), 1e-3):.0f}x the feed rate. "
        f"Goal (100 % delivered, in order, repeats only of sequence numbers already seen): {'met' if ok else 'NOT met'}."])
    print(table)
    if args.record:
        record.append(
            "etsi_outage: an agency's collector down for the outage, then catch-up (issue 16)",
            f".venv/bin/python -m bench.etsi_outage --rate {args.rate:g} --size {args.size} --before {args.before:g} "
            f"--outage {args.outage:g} --after {args.after:g} --repeats {args.repeats} --record",
            "the MD's ETSI handover in-process fed on the clock; the collector (its own process) SIGKILLed after "
            "`--before` s and restarted after `--outage` s; everything it wrote decoded and checked as an agency "
            "does (each PDU the next sequence number or a repeat of one seen, none missing); baseline: the same "
            f"feed without an outage, in the same run. {record.load_line(load_before, load_after)}",
            table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
