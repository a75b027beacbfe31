"""Benchmark: provisioning over SNMP versus through the controller's API.

N taps (default 1,000) provisioned on bmv2, in the same run:
- api: `controller.provision(mediation, [stream])` per tap;
- snmp: a mediation device (mediation/snmp_client.py over snmpv3's
  session, SNMPv3 authPriv SHA-256/AES, in a process of its own) sends
  REFERENCE.md's three createAndGo SETs per tap to the agent (mib_bridge),
  which drives the same controller; one tap at a time;
- snmp-window: the same with `--window` taps in flight (each tap's SETs in
  order), as an MD provisions many warrants: the agent still serves one SET
  at a time, but the round trips and the MD's own work (a separate machine
  in deployment, sharing these 2 cores here) hide behind the agent's.
Each sample starts from a fresh switch and an empty intent store; the
paths alternate, the median of the samples is reported.

`--switch softswitch` runs p4tap's Python software switch instead (where
bmv2 is not installed).

Goal (issue 4): snmp no more than 2x api.

    .venv/bin/python -m bench.snmp_provisioning [--taps N] [--repeats R] [--window W]
                                                [--switch bmv2|softswitch] [--record]
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bmv2_topo.bmv2_switch import Bmv2Switch, find_simple_switch_grpc
from bench import record
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import P4TAP
from controller.service import Controller, SwitchConfig
from controller.topology import NextHop, Route, SwitchTopology

MD = ipaddress.ip_address("203.0.113.250")
MD_PORT = 7000
SUBJECTS = [ipaddress.ip_address("192.0.2.0") + i for i in range(256)] + \
           [ipaddress.ip_address("198.51.100.0") + i for i in range(256)]
AUTH_KEY, PRIV_KEY = "bench-auth-passphrase", "bench-priv-passphrase"


def topology() -> SwitchTopology:
    return SwitchTopology(
        ports={1: 1, 2: 2, 3: 3},
        routes=(Route(0, ipaddress.ip_network(f"{MD}/32"), NextHop(3, "02:00:00:00:0b:fe", "02:00:00:00:0b:03")),),
        tap_sources={4: ipaddress.ip_address("203.0.113.1")},
        tap_source_port=49152,
    )


def tap(i: int) -> tuple[int, ipaddress.IPv4Address, int]:
    """Tap i: (content id, subject, UDP destination port)."""
    return i + 1, SUBJECTS[i % len(SUBJECTS)], 10000 + i // len(SUBJECTS)


def run_api(controller: Controller, n: int, timeout: datetime) -> float:
    started = time.perf_counter()
    for i in range(n):
        content_id, subject, port = tap(i)
        controller.provision(
            Mediation(content_id, MD, MD_PORT, timeout=timeout),
            [Stream(content_id, 1, IpFilter(InetAddressType.IPV4, src_address=subject, src_length=32, protocol=17,
                                            dst_port_min=port, dst_port_max=port), True)],
            actor="bench")
    return time.perf_counter() - started


def _snmp_client(port: int, n: int, timeout: datetime, window: int, result) -> None:
    """The mediation device, in a process of its own: one tap at a time
    (window 1), or `window` taps in flight, each tap's SETs in order."""
    try:
        seconds = _provision_over_snmp(port, n, timeout, window)
    except Exception as error:  # said to the parent, which would otherwise wait for ever
        result.put(error)
        return
    result.put(seconds)


def _provision_over_snmp(port: int, n: int, timeout: datetime, window: int) -> tuple[float, float]:
    from mediation.snmp_client import Filter, Provisioning, TapClient

    def filters(subject, dst_port) -> list[Filter]:
        return [Filter(src=f"{subject}/32", protocol=17, dst_ports=(dst_port, dst_port))]

    with TapClient("127.0.0.1", port, "md", AUTH_KEY, PRIV_KEY, timeout=10, retries=0) as client:
        client.get((1, 3, 6, 1, 2, 1, 1, 5, 0))  # USM discovery, outside the timing
        started, cpu = time.perf_counter(), time.process_time()
        if window == 1:
            for i in range(n):
                content_id, subject, dst_port = tap(i)
                client.provision(content_id, MD, MD_PORT, timeout, filters(subject, dst_port))
        else:
            taps = [Provisioning(c, MD, MD_PORT, timeout, tuple(filters(s, d))) for c, s, d in map(tap, range(n))]
            failed = {c: str(e) for c, e in client.provision_many(taps, window).items() if e is not None}
            if failed:
                raise RuntimeError(f"{len(failed)} taps refused, e.g. {next(iter(failed.items()))}")
        return time.perf_counter() - started, time.process_time() - cpu


def start_agent(controller: Controller, workdir: Path):
    """The agent as the benchmarks run it: one LI user `md`, on 127.0.0.1, started."""
    from mib_bridge.agent import Agent
    from mib_bridge.config import load, one_user_toml

    config = workdir / "snmp.toml"
    config.write_text(one_user_toml(["127.0.0.1:0"], "md", AUTH_KEY, PRIV_KEY))
    config.chmod(0o600)
    agent = Agent(load(config), controller)
    agent.start()
    return agent


def run_snmp(controller: Controller, n: int, timeout: datetime, workdir: Path, window: int) -> float:
    agent = start_agent(controller, workdir)
    try:
        context = multiprocessing.get_context("spawn")
        result = context.Queue()
        client = context.Process(target=_snmp_client, args=(agent.addresses[0].port, n, timeout, window, result))
        client.start()
        answer = result.get(timeout=3600)
        client.join()
        if isinstance(answer, Exception):
            raise RuntimeError(f"the mediation device failed: {answer}")
        seconds, client_cpu = answer
        print(f"   (the MD's CPU: {client_cpu:.2f} s, {client_cpu / (3 * n) * 1000:.2f} ms per SET)", flush=True)
    finally:
        agent.stop()
    return seconds


def sample(mode: str, n: int, workdir: Path, switch: str, window: int = 1) -> float:
    workdir.mkdir(parents=True)
    bmv2 = Bmv2Switch(ports={}, log_file=workdir / f"{switch}.log", target=switch)
    bmv2.start()
    controller = Controller([SwitchConfig("s1", bmv2.grpc_address, topology())], workdir / "intent.db",
                            workdir / "audit.jsonl")
    try:
        controller.start()
        timeout = datetime.now(timezone.utc) + timedelta(hours=2)
        seconds = run_api(controller, n, timeout) if mode == "api" else \
            run_snmp(controller, n, timeout, workdir, window)
        installed = len(controller.intercepts())
        if installed != n:
            raise RuntimeError(f"{mode}: {installed} of {n} taps installed")
        return seconds
    finally:
        controller.stop()
        bmv2.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taps", type=int, default=1000, help="taps provisioned per sample (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="samples per mode; the median is reported")
    parser.add_argument("--window", type=int, default=8,
                        help="taps the MD keeps in flight in the second SNMP mode (default 8)")
    parser.add_argument("--switch", choices=["bmv2", "softswitch"], default="bmv2",
                        help="the switch target: bmv2 (default) or p4tap's softswitch")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.switch == "bmv2" and find_simple_switch_grpc() is None:
        print("simple_switch_grpc not on PATH: nothing to measure (README, Toolchain)", file=sys.stderr)
        return 2
    if not P4TAP.exists():
        print("compiled pipeline missing in build/: run `make p4`", file=sys.stderr)
        return 2
    modes = {"api": ("controller API (`provision` per tap)", 1),
             "snmp": ("SNMPv3 authPriv, 3 createAndGo SETs per tap, one tap at a time", 1),
             "snmp-window": (f"SNMPv3 authPriv, 3 createAndGo SETs per tap, {args.window} taps in flight",
                             args.window)}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for mode, (_, window) in modes.items():
                seconds = sample(mode, args.taps, Path(tmp) / f"{mode}-{r}", args.switch, window)
                times[mode].append(seconds)
                print(f"   {mode} sample {r + 1}/{args.repeats}: {args.taps} taps in {seconds:.1f} s "
                      f"({args.taps / seconds:.1f} taps/s)", flush=True)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    rows = [f"| {label} | {median[mode]:.1f} s | {args.taps / median[mode]:.1f} | "
            f"{', '.join(f'{t:.1f}' for t in times[mode])} | {median[mode] / median['api']:.2f}x |"
            for mode, (label, _) in modes.items()]
    table = "\n".join([
        "| path | median for {:,} taps | taps/s | samples (s) | vs API |".format(args.taps),
        "|---|---:|---:|---|---:|",
        *rows,
        "",
        f"SNMP / API: **{median['snmp'] / median['api']:.2f}x** one tap at a time, "
        f"**{median['snmp-window'] / median['api']:.2f}x** with {args.window} taps in flight (goal: no more than 2x).",
    ])
    print(table)
    if args.record:
        record.append(
            f"snmp_provisioning: {args.taps:,} taps over SNMP vs the controller API, "
            f"on {args.switch}",
            f".venv/bin/python -m bench.snmp_provisioning --taps {args.taps} --repeats {args.repeats} "
            f"--window {args.window} --switch {args.switch} --record",
            f"each sample on a fresh {args.switch} and empty intent store; the API path provisions one tap at a "
            "time; the mediation device (mediation/snmp_client.py, snmpv3's session) runs in its own process on "
            "the same 2 cores, USM discovery before the clock starts, and sends each tap's three SETs in order, "
            f"one tap at a time or {args.window} taps in flight; median of {args.repeats} samples per path, "
            "alternating.",
            table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
