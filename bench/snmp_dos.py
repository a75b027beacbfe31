"""Benchmark: the lawful-intercept user's GET rate while the agent is flooded with junk.

The agent as it runs in production (mib_bridge's Agent, fast path on, the
real controller on a switch: bmv2, or p4tap's softswitch where bmv2 is not
installed), on loopback. In processes of their own:
- the LI user: closed-loop SNMPv3 authPriv GETs (sysName.0 and
  cTap2MediationNewIndex) through snmpv3's session (mediation/snmp_client);
- the junk sender: `--rate` datagrams/s (default 5,000), paced every 10 ms,
  a mix of random bytes, SNMPv3 requests of the LI user with a broken digest,
  of unknown users, for another engine (discovery-like), SNMPv1/v2c GETs and
  a few oversized (56 KB, 8,000 varbinds) SNMPv2c `public` GETs.
Or, with `--kind`, one kind of costly message (issue 26), 56 KB of 8,000
varbinds each, at `--rate` (default 20/s):
- heavy-noAuthNoPriv: SNMPv3 GETs of the LI user at noAuthNoPriv (it is
  configured authPriv: usmStatsUnsupportedSecLevels);
- heavy-v2c: SNMPv2c `public` GETs;
- heavy-wrong-digest: SNMPv3 authPriv GETs of the LI user under a wrong key
  (usmStatsWrongDigests).
Samples alternate unloaded / loaded, `--seconds` each; the medians are
compared. Goal (issue 12, 26): loaded >= 90% of unloaded. In loaded samples
the LI user goes on for a second after the flood stops; "recovery" is the
time from the flood's last datagram to the LI user's next answer (goal,
issue 26: within 1 s).

    .venv/bin/python -m bench.snmp_dos [--kind K] [--seconds S] [--repeats R] [--rate N] [--switch bmv2|softswitch] [--record]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import record
from bench.snmp_provisioning import AUTH_KEY, PRIV_KEY, start_agent, topology
from bmv2_topo.bmv2_switch import Bmv2Switch, find_simple_switch_grpc
from controller.pipeline import P4TAP
from controller.service import Controller, SwitchConfig

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
NEW_INDEX = (1, 3, 6, 1, 4, 1, 9, 9, 399, 1, 1, 1, 0)
MIX = (("random bytes", 30), ("broken digest", 20), ("unknown user", 20), ("other engine", 10),
       ("SNMPv1/v2c", 19), ("oversized SNMPv2c", 1))  # per 100; oversized: 1 in 500 (see junk_pool)
TICK = 0.01  # the junk sender's pacing
HEAVY = ("heavy-noAuthNoPriv", "heavy-v2c", "heavy-wrong-digest")
CONTROL = "control"  # 1-octet datagrams at the same pace: what the sender's pacing alone does to the figures
HEAVY_VARBINDS = 8000  # 56 KB
AFTER = 1.0  # seconds the LI user goes on after a flood stops


# -- the LI user ------------------------------------------------------------------------------

def _li_user(port: int, commands, results) -> None:
    """Closed-loop GETs for as long as each command (seconds) says; returns
    when it started and when each answer came (time.monotonic, one clock for
    every process of the machine), and how many GETs timed out."""
    from mediation.snmp_client import TapClient

    try:
        with TapClient("127.0.0.1", port, "md", AUTH_KEY, PRIV_KEY, timeout=1.0, retries=0) as client:
            client.get(SYS_NAME)  # USM discovery, outside the timing
            while (seconds := commands.get()) is not None:
                answers, timeouts = [], 0
                start = time.monotonic()
                end = start + seconds
                while time.monotonic() < end:
                    try:
                        client.get(SYS_NAME, NEW_INDEX)
                        answers.append(time.monotonic())
                    except Exception:
                        timeouts += 1
                results.put((start, answers, timeouts))
    except Exception as error:  # said to the parent, which would otherwise wait for ever
        results.put(error)


# -- the junk sender ---------------------------------------------------------------------------

def junk_pool(engine_id: bytes, boots: int, engine_time: int, n: int = 2000) -> list[tuple[str, bytes]]:
    """`n` datagrams in MIX's proportions (what the sender cycles through)."""
    from pysnmp.proto import rfc1905

    from mib_bridge.security import AUTH, PRIV
    from snmpv3 import ber, usm

    rng = random.Random(12)
    right = usm.Keys.derive(b"md", AUTH["SHA-256"], AUTH_KEY, PRIV["AES"], PRIV_KEY, engine_id)
    wrong = usm.Keys.derive(b"md", AUTH["SHA-256"], "not-the-auth-key", PRIV["AES"], PRIV_KEY, engine_id)
    stranger = usm.Keys.derive(b"nobody", AUTH["SHA-256"], AUTH_KEY, PRIV["AES"], PRIV_KEY, engine_id)
    assert right and wrong and stranger
    get = ber.encode_varbinds([(SYS_NAME, rfc1905.unSpecified), (NEW_INDEX, rfc1905.unSpecified)])

    def scoped(engine: bytes) -> bytes:
        return usm.scoped_pdu(engine, b"", usm.GET, rng.randrange(2**31), 0, 0, get)

    def v2c(varbinds: int) -> bytes:
        body = ber.tlv(ber.SEQUENCE, ber.encode_oid((1, 3)) + b"\x05\x00") * varbinds
        pdu = ber.tlv(usm.GET, ber.encode_integer(rng.randrange(2**31)) + ber.encode_integer(0)
                      + ber.encode_integer(0) + ber.tlv(ber.SEQUENCE, body))
        return ber.tlv(ber.SEQUENCE, ber.encode_integer(rng.choice((0, 1))) + ber.tlv(ber.OCTET_STRING, b"public")
                       + pdu)

    flags = usm.AUTH_PRIV | usm.REPORTABLE
    makers = {
        "random bytes": lambda: rng.randbytes(rng.randint(1, 1400)),
        "broken digest": lambda: usm.seal(wrong, rng.randrange(2**31), 65507, flags, engine_id, boots, engine_time,
                                          scoped(engine_id)),
        "unknown user": lambda: usm.seal(stranger, rng.randrange(2**31), 65507, flags, engine_id, boots, engine_time,
                                         scoped(engine_id)),
        "other engine": lambda: usm.seal(right, rng.randrange(2**31), 65507, flags, b"\x80\x00\x1f\x88\x05junk", 1,
                                         0, scoped(b"\x80\x00\x1f\x88\x05junk")),
        "SNMPv1/v2c": lambda: v2c(1),
    }
    pool = []
    for i in range(n):
        if i % 500 == 499:
            pool.append(("oversized SNMPv2c", v2c(8000)))
            continue
        pick = rng.choices([k for k, _ in MIX[:-1]], [w for _, w in MIX[:-1]])[0]
        pool.append((pick, makers[pick]()))
    return pool


def heavy_pool(kind: str, engine_id: bytes, boots: int, engine_time: int, n: int = 100) -> list[tuple[str, bytes]]:
    """`n` datagrams of one costly kind (HEAVY), each with its own msgID and request-id."""
    from pysnmp.proto import rfc1905

    from mib_bridge.security import AUTH, PRIV
    from snmpv3 import ber, usm

    rng = random.Random(26)
    varbinds = ber.encode_varbinds([((1, 3), rfc1905.unSpecified)] * HEAVY_VARBINDS)  # 7 octets each
    wrong = usm.Keys.derive(b"md", AUTH["SHA-256"], "not-the-auth-key", PRIV["AES"], PRIV_KEY, engine_id)
    assert wrong

    def scoped() -> bytes:
        return usm.scoped_pdu(engine_id, b"", usm.GET, rng.randrange(2**31), 0, 0, varbinds)

    def make() -> bytes:
        if kind == "heavy-noAuthNoPriv":
            return usm.plain(rng.randrange(2**31), 65507, usm.REPORTABLE, scoped(), engine_id, boots, engine_time, b"md")
        if kind == "heavy-wrong-digest":
            return usm.seal(wrong, rng.randrange(2**31), 65507, usm.AUTH_PRIV | usm.REPORTABLE, engine_id, boots,
                            engine_time, scoped())
        pdu = ber.tlv(usm.GET, ber.encode_integer(rng.randrange(2**31)) + ber.encode_integer(0)
                      + ber.encode_integer(0) + varbinds)
        return ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.tlv(ber.OCTET_STRING, b"public") + pdu)

    pool = [(kind, make()) for _ in range(n)]
    assert all(len(d) <= 65507 for _, d in pool), "a heavy datagram does not fit in UDP"
    return pool


def _junk_sender(port: int, pool: list[tuple[str, bytes]], rate: float, commands, results) -> None:
    """At the lowest CPU priority: in deployment the attacker's CPU is not the
    agent's machine's; on loopback it would otherwise take the agent's share."""
    os.nice(19)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    datagrams = [d for _, d in pool]
    while (seconds := commands.get()) is not None:
        sent, i = 0, 0
        start = time.perf_counter()
        end = start + seconds
        while (now := time.perf_counter()) < end:
            due = int((now - start) * rate)
            while sent < due:
                try:
                    sock.send(datagrams[i % len(datagrams)])
                except OSError:  # ECONNREFUSED from an earlier ICMP: the datagram is lost, as junk is
                    pass
                sent += 1
                i += 1
            time.sleep(TICK)
        results.put((sent / (time.perf_counter() - start), time.monotonic()))
    sock.close()


# -- the run -----------------------------------------------------------------------------------

def run(seconds: float, repeats: int, rate: float, switch: str, workdir: Path, kind: str = "mix") -> dict:
    bmv2 = Bmv2Switch(ports={}, log_file=workdir / f"{switch}.log", target=switch)
    bmv2.start()
    controller = Controller([SwitchConfig("s1", bmv2.grpc_address, topology())], workdir / "intent.db",
                            workdir / "audit.jsonl")
    context = multiprocessing.get_context("spawn")
    procs = []
    try:
        controller.start()
        agent = start_agent(controller, workdir)
        try:
            port = agent.addresses[0].port
            boots, engine_time = agent.engine.get_mib_builder().import_symbols(
                "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime")
            clock = (bytes(agent.engine.snmpEngineID), int(boots.syntax), int(engine_time.syntax.clone()))
            pool = (junk_pool(*clock) if kind == "mix" else [(CONTROL, b"\x00")] if kind == CONTROL
                    else heavy_pool(kind, *clock))
            li_cmd, li_out, junk_cmd, junk_out = (context.Queue() for _ in range(4))
            procs = [context.Process(target=_li_user, args=(port, li_cmd, li_out)),
                     context.Process(target=_junk_sender, args=(port, pool, rate, junk_cmd, junk_out))]
            for proc in procs:
                proc.start()
            samples: dict[str, list[float]] = {"unloaded": [], "loaded": []}
            timeouts = {"unloaded": 0, "loaded": 0}
            sent_rates, recoveries = [], []
            audit_before = agent.controller.audit.seq
            cpu_before = time.process_time()
            for r in range(repeats):
                for mode in ("unloaded", "loaded"):
                    if mode == "loaded":
                        junk_cmd.put(seconds + 0.25)
                        time.sleep(0.25)  # the flood is on before the clock starts
                    li_cmd.put(seconds + (AFTER if mode == "loaded" else 0))
                    answer = li_out.get(timeout=seconds + 120)
                    if isinstance(answer, Exception):
                        raise RuntimeError(f"the LI user failed: {answer}")
                    started, answered, timed_out = answer
                    note = ""
                    if mode == "loaded":
                        sent, stopped = junk_out.get(timeout=60)
                        sent_rates.append(sent)
                        during = [t for t in answered if t <= stopped]
                        rate_now = len(during) / max(stopped - started, 1e-9)
                        after = [t for t in answered if t > stopped]
                        recoveries.append((after[0] - stopped) if after else float("inf"))
                        note = f", junk {sent:.0f} datagrams/s, answered {recoveries[-1]:.3f} s after the flood stopped"
                    else:
                        rate_now = len(answered) / seconds
                    time.sleep(0.5)  # the agent's backlog drains before the next sample
                    samples[mode].append(rate_now)
                    timeouts[mode] += timed_out
                    print(f"   {mode} sample {r + 1}/{repeats}: {rate_now:.0f} GETs/s{note}", flush=True)
            agent.flush_audit()
            fast = agent.fast_path
            stats = {"refused": agent.refusals.total, "audit_records": agent.controller.audit.seq - audit_before,
                     "to_pysnmp_refused": fast.budget.refused, "replays": fast.replays.replays,
                     "bench_process_cpu": time.process_time() - cpu_before,
                     "counters": {name: agent.counters.value(name) for name in
                                  ("snmpInPkts", "snmpInASNParseErrs", "snmpInBadVersions", "usmStatsWrongDigests",
                                   "usmStatsUnknownUserNames", "usmStatsUnknownEngineIDs",
                                   "usmStatsUnsupportedSecLevels")}}
        finally:
            for q in (li_cmd, junk_cmd):
                q.put(None)
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
            agent.stop()
    finally:
        controller.stop()
        bmv2.stop()
    return {"samples": samples, "timeouts": timeouts, "sent": sent_rates, "recoveries": recoveries, **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each sample (default 5 s)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per mode; the median is reported")
    parser.add_argument("--kind", choices=["mix", *HEAVY, CONTROL], default="mix",
                        help="mix: the junk mix (default); or one kind of costly 56 KB message; or control: "
                             "1-octet datagrams (nearly free to refuse) at the same pace")
    parser.add_argument("--rate", type=float, default=None,
                        help="junk datagrams per second (default 5,000 for the mix, 20 for a heavy kind)")
    parser.add_argument("--switch", choices=["bmv2", "softswitch"],
                        default="bmv2" if find_simple_switch_grpc() else "softswitch",
                        help="the switch target (default: bmv2 where installed, else the softswitch)")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = 5000.0 if args.kind == "mix" else 20.0
    if not P4TAP.exists():
        print("compiled pipeline missing in build/: run `make p4`", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.seconds, args.repeats, args.rate, args.switch, Path(tmp), args.kind)
    load_after = os.getloadavg()
    samples = result["samples"]
    median = {mode: statistics.median(s) for mode, s in samples.items()}
    ratio = median["loaded"] / median["unloaded"]
    counters = ", ".join(f"{k} {v:,}" for k, v in result["counters"].items())
    table = "\n".join([
        "| LI user | median GETs/s | samples (GETs/s) | timeouts |",
        "|---|---:|---|---:|",
        *(f"| {mode} | {median[mode]:.0f} | {', '.join(f'{s:.0f}' for s in samples[mode])} | "
          f"{result['timeouts'][mode]} |" for mode in ("unloaded", "loaded")),
        "",
        f"Loaded / unloaded: **{ratio:.2f}** (goal: at least 0.90), junk sent at "
        f"{statistics.median(result['sent']):,.0f} datagrams/s (median of the loaded samples).",
        f"The LI user answered again {max(result['recoveries']):.3f} s after the flood stopped, at worst "
        f"(median {statistics.median(result['recoveries']):.3f} s; goal: within 1 s).",
        f"Refused by the agent in the run: {result['refused']:,} datagrams, in {result['audit_records']:,} "
        f"audit records; {result['to_pysnmp_refused']:,} over pysnmp's budget; counters at the end: {counters}.",
    ])
    print(table)
    if args.record:
        mix = ", ".join(f"{name} {share}%" if name != "oversized SNMPv2c" else f"{name} 0.2%" for name, share in MIX)
        if args.kind in HEAVY:
            mix = f"only {args.kind} (56 KB, {HEAVY_VARBINDS:,} varbinds each, 100 distinct)"
        elif args.kind == CONTROL:
            mix = "only 1-octet datagrams (a control: the sender's pacing without a cost to the agent)"
        record.append(
            f"snmp_dos: the LI user's GET rate under {args.rate:,.0f} {'junk' if args.kind == 'mix' else args.kind} "
            f"datagrams/s, on {args.switch}",
            f".venv/bin/python -m bench.snmp_dos --kind {args.kind} --seconds {args.seconds:g} --repeats {args.repeats} "
            f"--rate {args.rate:g} --switch {args.switch} --record",
            "the agent (fast path on) with the real controller on the switch, all on loopback; the LI user "
            "(snmpv3's session, authPriv SHA-256/AES) sends closed-loop GETs of sysName.0 and "
            "cTap2MediationNewIndex for each sample, in its own process; the junk sender, another process, "
            f"paces {args.rate:,.0f} datagrams/s in 10 ms steps, cycling through {'2,000 datagrams: ' if args.kind == 'mix' else ''}{mix}; samples "
            f"of {args.seconds:g} s alternate unloaded/loaded, {args.repeats} each, medians compared; in loaded "
            f"samples the LI user goes on {AFTER:g} s after the flood stops, and the time to its next answer is "
            "the recovery.",
            table,
            (record.load_line(load_before, load_after),),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
