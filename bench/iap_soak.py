"""Soak: drive the IAP the way a mediation device does, for a stated time, on
bmv2, and fail if the switch dies or forwarding stops (issue 27).

What runs, as in deployment: `simple_switch_grpc` on veth pairs (the lab of
ptf_tests.base), the IAP as `python -m mib_bridge` (controller and SNMPv3
agent in one process, P4Runtime to the switch), and here the MD:
- a provisioning thread: each round creates a few random intercepts with the
  three-PDU createAndGo sequence (IPv4 and IPv6 filters, some with protocol
  and port ranges), about a third with a Timeout a few seconds away so that it
  expires under traffic, refreshes a Timeout now and then, and removes some;
- an audit thread (the MD keeper's reads): walks the mediation, stream and
  filter tables (every stream's counters, read from the switch) about once a
  second;
- traffic: mixed IPv4/IPv6 UDP and TCP between the subject, the other
  subscriber and the peer at `--pps` (bench/soak_traffic.py), and a meter of
  what the switch forwards and copies.

The switch runs under the keeper (bmv2_topo.keeper): a death is counted,
reported with its exit status, and the switch restarted, so one run can show
several deaths; any death fails the soak, as does forwarding to the peer
stopping for `--stall` seconds while the switch is up.

    sudo P4TAP_NET_TAG=b nice -n 5 .venv/bin/python -m bench.iap_soak --minutes 10 [--switch bmv2|softswitch]
    make soak SOAK_MINUTES=10
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.soak_traffic import Meter, Sender
from bmv2_topo.bmv2_switch import Bmv2Switch, resolve_target, target_skip_reason
from bmv2_topo.keeper import Outage, SwitchKeeper
from bmv2_topo.veth import veth_pairs
from controller.pipeline import REPO_ROOT
from mediation.snmp_client import Filter, TapClient, TapClientError
from mib_bridge.config import one_user_toml
from ptf_tests.base import MD_A, OTHER, PEER, PORTS, SUBJECT, lab_controller_toml

log = logging.getLogger("p4tap.soak")

USER = "md1"
# Subjects the intercepts choose from: the hosts that send traffic (so that
# copies flow and counters move) and a few that do not.
SUBJECTS = [SUBJECT.ipv4, OTHER.ipv4, PEER.ipv4, SUBJECT.ipv6, OTHER.ipv6, PEER.ipv6,
            "192.0.2.77", "198.51.100.77", "2001:db8:1::77"]
ROUND_SECONDS = 5.0  # one provisioning round every this many seconds (--round)


@dataclass
class Figures:
    """What the soak did and saw; written to report.json and printed."""

    target: str = ""
    seconds: float = 0.0
    rounds: int = 0
    provisioned: int = 0
    refused: int = 0
    removed: int = 0
    refreshed: int = 0
    short_lived: int = 0  # intercepts given a Timeout that passes during the soak
    expired: int = 0  # intercepts the IAP ended at their Timeout (its audit log's expire records)
    audits: int = 0
    snmp_errors: int = 0
    frames_sent: int = 0
    sent_to_peer: int = 0
    forwarded_to_peer: int = 0
    copies_to_md: int = 0
    switch_deaths: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    iap_exit: int | None = None

    @property
    def ok(self) -> bool:
        return not self.switch_deaths and not self.stalls and self.iap_exit is None and self.rounds > 0


def controller_toml(grpc_address: str) -> str:
    """The IAP's controller config for ptf_tests.base's lab (routes to the MD, v4 and v6)."""
    return lab_controller_toml(grpc_address, control_socket="state/control.sock", ipv6_route=True)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_filters(rng: random.Random) -> list[Filter]:
    """One or two streams on a random subject: all its traffic one way, or one protocol and port range."""
    subject = rng.choice(SUBJECTS)
    bits = 128 if ":" in subject else 32
    out = []
    for _ in range(rng.choice((1, 2))):
        side = {"src": f"{subject}/{bits}"} if rng.random() < 0.5 else {"dst": f"{subject}/{bits}"}
        if rng.random() < 0.4:
            low = rng.choice((53, 80, 5004, 5060, 40000))
            out.append(Filter(**side, protocol=rng.choice((6, 17)), dst_ports=(low, low + rng.randrange(0, 100))))
        else:
            out.append(Filter(**side))
    return out


class Md:
    """The mediation device's two activities, each on a thread of its own with its own SNMP session."""

    def __init__(self, port: int, auth: str, priv: str, figures: Figures, seed: int,
                 round_seconds: float = ROUND_SECONDS) -> None:
        self.port, self.auth, self.priv, self.figures = port, auth, priv, figures
        self.round_seconds = round_seconds
        self.rng = random.Random(seed)
        self.live: dict[int, tuple[int, datetime]] = {}  # content id -> (streams, timeout)
        self.next_id = 1000
        self.stop = threading.Event()
        self.errors: list[str] = []

    def client(self) -> TapClient:
        return TapClient("127.0.0.1", self.port, USER, self.auth, self.priv, timeout=5.0, retries=1)

    def provisioning(self, until: float) -> None:
        with self.client() as md:
            while not self.stop.is_set() and time.monotonic() < until:
                started = time.monotonic()
                try:
                    self._round(md)
                except TapClientError as error:
                    self.figures.snmp_errors += 1
                    self.errors.append(f"round {self.figures.rounds}: {error}")
                    log.warning("SNMP: %s", error)
                self.figures.rounds += 1
                self.stop.wait(max(0.0, self.round_seconds - (time.monotonic() - started)))

    def _round(self, md: TapClient) -> None:
        now = datetime.now(timezone.utc)
        self.live = {c: v for c, v in self.live.items() if v[1] > now}  # the IAP ended those itself
        for _ in range(self.rng.randint(1, 4)):
            self.next_id += 1
            short = self.rng.random() < 0.35
            timeout = now + timedelta(seconds=self.rng.uniform(3, 12) if short else self.rng.uniform(60, 900))
            filters = random_filters(self.rng)
            try:
                md.provision(self.next_id, ipaddress.ip_address(MD_A.ipv4), 7000, timeout, filters)
            except TapClientError as error:
                if error.status is None:
                    raise
                self.figures.refused += 1  # e.g. the switch's capacity: the agent said why
                continue
            self.live[self.next_id] = (len(filters), timeout)
            self.figures.provisioned += 1
            self.figures.short_lived += short
        lasting = [c for c, (_, t) in self.live.items() if t > now + timedelta(seconds=30)]
        if lasting and self.rng.random() < 0.3:
            content_id = self.rng.choice(lasting)
            timeout = now + timedelta(seconds=self.rng.uniform(60, 900))
            md.refresh(content_id, timeout)
            self.live[content_id] = (self.live[content_id][0], timeout)
            self.figures.refreshed += 1
        for content_id in self.rng.sample(lasting, k=min(len(lasting), self.rng.randint(0, 2))):
            streams, _ = self.live.pop(content_id)
            md.remove(content_id, streams)
            self.figures.removed += 1

    def auditing(self, until: float) -> None:
        with self.client() as md:
            while not self.stop.is_set() and time.monotonic() < until:
                try:
                    md.intercepts()  # every stream's counters: Reads on the switch
                    self.figures.audits += 1
                except TapClientError as error:
                    self.figures.snmp_errors += 1
                    self.errors.append(f"audit: {error}")
                self.stop.wait(1.0)


def wait_for_agent(port: int, auth: str, priv: str, iap: subprocess.Popen, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if iap.poll() is not None:
            raise RuntimeError(f"the IAP exited with status {iap.returncode} while starting")
        try:
            with TapClient("127.0.0.1", port, USER, auth, priv, timeout=1.0, retries=0) as md:
                md.uptime()
                return
        except TapClientError:
            time.sleep(0.5)
    raise RuntimeError(f"the IAP's agent did not answer within {limit:.0f}s")


def soak(minutes: float, target: str, pps: float, stall: float, out: Path, seed: int,
         round_seconds: float = ROUND_SECONDS) -> Figures:
    figures = Figures(target=target)
    out.mkdir(parents=True, exist_ok=True)
    auth, priv = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    with veth_pairs(PORTS, prefix="p4ts") as pairs:
        ifaces = {p.port: p.host_end for p in pairs}
        switch = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, target=target, name="s1",
                            workdir=out / "switch", log_file=out / "switch.log")
        switch.start()
        try:
            snmp_port = free_udp_port()
            (out / "p4tap.toml").write_text(controller_toml(switch.grpc_address))
            agent = out / "snmp.toml"
            agent.write_text(one_user_toml([f"127.0.0.1:{snmp_port}"], USER, auth, priv, sys_name="p4tap-soak"))
            agent.chmod(0o600)
            env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
            with open(out / "iap.log", "wb") as iap_log:
                iap = subprocess.Popen([sys.executable, "-m", "mib_bridge", "--config", str(agent),
                                        "--controller-config", str(out / "p4tap.toml")],
                                       cwd=REPO_ROOT, env=env, stdout=iap_log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
                try:
                    figures = _drive(minutes, switch, iap, ifaces, snmp_port, auth, priv, pps, stall, figures, seed,
                                     round_seconds)
                finally:
                    if iap.poll() is None:
                        iap.terminate()
                        try:
                            iap.wait(30)
                        except subprocess.TimeoutExpired:
                            iap.kill()
                            iap.wait()
        finally:
            switch.stop()
    audit = out / "state" / "audit.jsonl"
    if audit.exists():
        figures.expired = sum(1 for line in audit.read_text().splitlines() if '"action":"expire"' in line)
    return figures


def _drive(minutes: float, switch: Bmv2Switch, iap: subprocess.Popen, ifaces: dict[int, str], snmp_port: int,
           auth: str, priv: str, pps: float, stall: float, figures: Figures, seed: int,
           round_seconds: float) -> Figures:
    wait_for_agent(snmp_port, auth, priv, iap)
    deaths: list[Outage] = []

    def heard(outage: Outage) -> None:
        if outage.restarted_at is None:
            deaths.append(outage)
            message = (f"switch died ({outage.how}, pid {outage.pid}) after {time.monotonic() - started:.0f} s, "
                       f"in round {figures.rounds}")
            figures.switch_deaths.append(message)
            log.error("%s", message)

    meter, sender = Meter(ifaces), Sender(ifaces, pps)
    md = Md(snmp_port, auth, priv, figures, seed, round_seconds)
    started = time.monotonic()
    until = started + minutes * 60
    with SwitchKeeper({"s1": switch}) as keeper:
        keeper.on_outage(heard)
        threads = [threading.Thread(target=md.provisioning, args=(until,), daemon=True),
                   threading.Thread(target=md.auditing, args=(until,), daemon=True)]
        for thread in threads:
            thread.start()
        last_report = started
        try:
            while time.monotonic() < until:
                time.sleep(1.0)
                now = time.monotonic()
                if iap.poll() is not None:
                    figures.iap_exit = iap.returncode
                    log.error("the IAP exited with status %s", iap.returncode)
                    break
                seen = meter.snapshot()[PEER.port]
                quiet = now - (seen.last or started)
                # a death is already a failure; the stall check resumes once the switch had time to recover
                recent_death = any(time.time() - o.died_at < stall + 30 for o in deaths)
                if quiet > stall and switch.alive and not recent_death:
                    figures.stalls.append(f"nothing forwarded to the peer for {quiet:.0f} s at {now - started:.0f} s "
                                          f"(round {figures.rounds}) while the switch ran")
                    log.error("%s", figures.stalls[-1])
                    break
                if now - last_report >= 60:
                    last_report = now
                    counts = meter.snapshot()
                    log.info("%.0f s: %d rounds, %d provisioned, %d removed, %d audits; %d sent, %d forwarded to "
                             "the peer, %d copies; %d switch deaths", now - started, figures.rounds,
                             figures.provisioned, figures.removed, figures.audits, sender.sent,
                             counts[PEER.port].frames, counts[MD_A.port].frames, len(figures.switch_deaths))
        finally:
            md.stop.set()
            for thread in threads:
                thread.join(30)
            sender.stop()
            time.sleep(0.5)  # what is still in the switch
            meter.stop()
    counts = meter.snapshot()
    figures.seconds = round(time.monotonic() - started, 1)
    figures.frames_sent = sender.sent
    figures.sent_to_peer = sender.sent_to_peer
    figures.forwarded_to_peer = counts[PEER.port].frames
    figures.copies_to_md = counts[MD_A.port].frames
    if md.errors:
        log.warning("SNMP errors (first 5): %s", md.errors[:5])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    parser.add_argument("--switch", choices=["bmv2", "softswitch"], default="bmv2")
    parser.add_argument("--pps", type=float, default=150.0, help="frames per second of traffic (default 150)")
    parser.add_argument("--stall", type=float, default=10.0,
                        help="seconds without a frame forwarded to the peer that fail the soak (default 10)")
    parser.add_argument("--round", type=float, default=ROUND_SECONDS,
                        help=f"seconds per provisioning round (default {ROUND_SECONDS:g})")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    parser.add_argument("--out", type=Path, default=None, help="logs and report.json (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    if os.geteuid() != 0:
        print("iap_soak: needs root (veth pairs)", file=sys.stderr)
        return 2
    reason = target_skip_reason(args.switch)
    if reason:
        print(f"iap_soak: {reason}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time())
    out = args.out or Path(tempfile.mkdtemp(prefix="p4tap-soak-"))
    log.info("soaking the IAP on %s for %.1f min at %.0f pps, seed %d; logs in %s", resolve_target(args.switch),
             args.minutes, args.pps, seed, out)
    figures = soak(args.minutes, args.switch, args.pps, args.stall, out, seed, args.round)
    report = {**asdict(figures), "ok": figures.ok, "seed": seed, "minutes": args.minutes, "pps": args.pps,
              "round_seconds": args.round}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"soak {'PASSED' if figures.ok else 'FAILED'}: {figures.seconds:.0f} s, {figures.rounds} rounds, "
          f"{len(figures.switch_deaths)} switch deaths, {len(figures.stalls)} stalls; logs in {out}")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
