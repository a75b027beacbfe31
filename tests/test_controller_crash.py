"""Fault injection: the controller SIGKILLed at every step of a provision,
and at random moments of large batches, on each switch target; and a switch
that cannot hold what the intent asks (issue 13, items 3 and 4).

After every kill the controller is started again with `p4tap controller run`
and must come up; then, read back from the switch over P4Runtime, the switch
holds exactly the committed intercepts (those the intent store holds and the
switch did not refuse: no filter without its clone session, no session
without its filters and encapsulation, no gate without filters), every
intercept the store holds is named by the audit log, and the audit chain
verifies.

The kills at step boundaries use the controller's test hook
($P4TAP_CRASH_AT, controller/crashpoints.py); the random ones a plain
SIGKILL from outside.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from p4protos import p4runtime_pb2 as p4r

from bmv2_topo.bmv2_switch import Bmv2Switch
from controller import codec, config as controller_config
from controller.audit import verify
from controller.control import ControlError, request
from controller.crashpoints import CRASH_ENV, STEPS
from controller.entries import ENCAP_TABLE, MERGE_TABLE, filter_table, gate_table
from controller.managed_switch import ManagedSwitch
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import P4TAP, REPO_ROOT, Pipeline
from controller.plan import Side
from controller.reconcile import diff
from controller.store import IntentStore
from controller.switch import SwitchConnection
from controller.wire import from_entity
from ptf_tests.base import MD_A
from tests.snmp_support import DEBUG, STREAM, needs_net_snmp, start_agent
from tests.test_controller_deployment import controller_daemon, lab_config, p4tap

pytestmark = pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`")

ELECTION = 5  # the controller's; the test reads as a backup with a lower one



@contextmanager
def switch_of(target: str, tmp_path: Path, replication_groups: int | None = None) -> Iterator[Bmv2Switch]:
    """A switch with no ports (nothing here needs packets) and, if given, a
    replication engine of `replication_groups` multicast groups."""
    switch = Bmv2Switch(ports={}, log_file=tmp_path / "switch.log", target=target,
                        replication_groups=replication_groups)
    switch.start()
    try:
        yield switch
    finally:
        switch.stop()


def crash_config(tmp_path: Path, switch: Bmv2Switch, extra: str = "") -> Path:
    return lab_config(tmp_path, switch.grpc_address, f"election_id = {ELECTION}\n{extra}")


def tap(content_id: int, streams: int = 1, subject_base: int = 0) -> tuple[Mediation, list[Stream]]:
    """An intercept of `streams` subjects (one /32 each, 198.51.100.0/24 and
    up) delivered to MD_A on a port of its own, so it has a clone session of its own."""
    m = Mediation(content_id, ipaddress.ip_address(MD_A.ipv4), 1024 + content_id % 60000,
                  timeout=datetime.now(timezone.utc) + timedelta(hours=2))
    base = ipaddress.ip_address("198.51.100.0")
    return m, [Stream(content_id, i + 1, IpFilter(InetAddressType.IPV4, src_address=base + (subject_base + i) % 4096,
                                                  src_length=32, protocol=17, dst_port_min=content_id % 65536,
                                                  dst_port_max=content_id % 65536), True)
               for i in range(streams)]


# -- what must hold after every restart ----------------------------------------------

def audit_records(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines() if line.startswith("{")]


def named_by_intent(records: list[dict]) -> set[int]:
    """Content ids the audit log names as provisioned (announced or done)."""
    named: set[int] = set()
    for r in records:
        if r["action"] in ("provision-intent", "provision"):
            named.update(r["detail"].get("content_ids") or [r["detail"]["content_id"]])
    return named


def check_whole(actual, pipeline: Pipeline) -> None:
    """Structure, read from the switch alone: every session a filter or merge
    names exists, every session is named and has its encapsulations, every
    gate has filters on its side."""
    table = {e.key[1]: [] for e in actual if e.key[0] == "table"}
    for e in actual:
        if e.key[0] == "table":
            table[e.key[1]].append(e.entity.table_entry)
    sessions = {e.entity.packet_replication_engine_entry.clone_session_entry.session_id: e for e in actual
                if e.key[0] == "clone"}
    named: set[int] = set()
    for family in (4, 6):
        for side in Side:
            filters = table.get(pipeline.table_id(filter_table(family, side)), [])
            gates = table.get(pipeline.table_id(gate_table(family, side)), [])
            assert filters or not gates, f"IPv{family} {side.value} gates with no filter behind them"
            named |= {int.from_bytes(te.action.action.params[0].value, "big") for te in filters}
    for te in table.get(pipeline.table_id(MERGE_TABLE), []):
        named.add(int.from_bytes(te.action.action.params[0].value, "big"))
        named |= {int.from_bytes(m.exact.value, "big") for m in te.match}
    assert named <= set(sessions), f"filters name missing clone sessions {sorted(named - set(sessions))}"
    assert set(sessions) <= named, f"clone sessions no filter names: {sorted(set(sessions) - named)}"
    encaps = {int.from_bytes(te.match[0].exact.value, "big") for te in table.get(pipeline.table_id(ENCAP_TABLE), [])}
    rids = {r.instance for e in sessions.values()
            for r in e.entity.packet_replication_engine_entry.clone_session_entry.replicas}
    assert rids == encaps, f"replicas without encapsulation {sorted(rids - encaps)}, " \
                           f"encapsulations of no replica {sorted(encaps - rids)}"


def check_recovered(config: Path) -> tuple[dict[int, dict], list[dict]]:
    """Everything issue 13 asks of a restarted controller (it must be running):
    returns the intercepts it lists (content id -> `tap list --json` entry)
    and the audit records."""
    state = config.parent / "state"
    settings = controller_config.load(config)
    listed = {t["mediation"]["content_id"]: t for t in request(settings.control_socket, {"op": "list"})}
    assert request(settings.control_socket, {"op": "status"})["s1"]["primary"]

    result = verify(state / "audit.jsonl")
    assert result.ok, result.problems[:5]
    records = audit_records(state)
    unnamed = set(listed) - named_by_intent(records)
    assert not unnamed, f"intercepts no audit record names: {sorted(unnamed)}"

    with IntentStore(state / "intent.db") as store:
        intents, ids, refused = store.all(), store.load_ids("s1"), store.refusals()
    assert set(listed) == {m.content_id for m, _, _ in intents}
    assert {c: t["refused"] for c, t in listed.items() if t["refused"]} == refused
    accepted = [i for i in intents if "s1" not in refused.get(i[0].content_id, {})]
    pipeline = Pipeline.load()
    switch = ManagedSwitch(settings.switches[0], pipeline, ids=ids)
    with SwitchConnection(settings.switches[0].address, election_id=(0, 1)) as observer:
        switch.conn = observer
        actual = switch.read_actual()
    desired = switch.desired(switch.plan(accepted, datetime.now(timezone.utc)))
    # The expiries are on the switch's clock, which only the controller probed.
    d = diff(without_expiries(desired, pipeline), without_expiries(actual, pipeline))
    assert not d, f"the switch does not hold exactly the committed intercepts: {d.summary()}"
    check_whole(actual, pipeline)
    return listed, records


def without_expiries(entities, pipeline: Pipeline) -> list:
    """The entities with every encapsulation entry's last tick zeroed."""
    encap = pipeline.table_id(ENCAP_TABLE)
    last_tick = {(a.preamble.id, p.id) for a in pipeline.p4info.actions for p in a.params if p.name == "last_tick"}
    out = []
    for w in entities:
        entity = p4r.Entity()
        entity.CopyFrom(w.entity)
        if entity.WhichOneof("entity") == "table_entry" and entity.table_entry.table_id == encap:
            action = entity.table_entry.action.action
            for param in action.params:
                if (action.action_id, param.param_id) in last_tick:
                    param.value = b"\x00"
        out.append(from_entity(entity))
    return out


def killed(daemon: subprocess.Popen) -> None:
    daemon.wait(timeout=60)
    assert daemon.returncode == -signal.SIGKILL, f"exit {daemon.returncode}, not killed by the hook"


# -- SIGKILL at each step boundary of a provision ---------------------------------------

# Enough streams that the change takes two Write RPCs (APPLY_BATCH = 2000): a
# filter and a gate per stream, so "mid-write" falls between them.
BIG = 1100


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_of_a_provision(target, tmp_path, step):
    with switch_of(target, tmp_path) as sw:
        config = crash_config(tmp_path, sw)
        sock = tmp_path / "control.sock"
        with controller_daemon(config) as daemon:  # one intercept that stays throughout
            request(sock, {"op": "add", "intercept": codec.intercept_to_dict(*tap(7))})
        with SwitchConnection(sw.grpc_address, election_id=(0, 1)) as observer:
            before = len(observer.read_table_entries())
        mediation, streams = tap(77, streams=BIG, subject_base=100)
        with controller_daemon(config, env={CRASH_ENV: step}) as daemon:
            with pytest.raises((ControlError, OSError)):  # the requester is never answered
                request(sock, {"op": "add", "intercept": codec.intercept_to_dict(mediation, streams)})
            killed(daemon)
        if step == "mid-write":  # the kill really fell inside the write: part of 77 is on the switch
            with SwitchConnection(sw.grpc_address, election_id=(0, 1)) as observer:
                held = len(observer.read_table_entries())
            assert before + 100 < held < before + 2 * BIG + 1, (before, held)

        with controller_daemon(config):
            listed, records = check_recovered(config)
        committed = step != "before-store"
        assert set(listed) == ({7, 77} if committed else {7})
        recovered = [r for r in records if r["action"] == "recover"]
        if step == "after-audit":  # the outcome was recorded: nothing to recover
            assert recovered == [] and any(r["action"] == "provision" and r["detail"].get("content_id") == 77
                                           for r in records)
        else:
            assert [(r["detail"]["content_ids"], r["detail"]["committed"]) for r in recovered] == [([77], committed)]
            intent = next(r for r in records if r["action"] == "provision-intent" and r["detail"]["content_id"] == 77)
            assert recovered[0]["detail"]["intent_seq"] == intent["seq"]
            assert intent["actor"].startswith("cli:")  # the requester is named


def test_sigkill_during_a_removal_is_recorded_either_way(target, tmp_path):
    with switch_of(target, tmp_path) as sw:
        config = crash_config(tmp_path, sw)
        sock = tmp_path / "control.sock"
        with controller_daemon(config):
            for content_id in (7, 8):
                request(sock, {"op": "add", "intercept": codec.intercept_to_dict(*tap(content_id))})
        for content_id, step in ((7, "before-store"), (8, "after-store")):
            with controller_daemon(config, env={CRASH_ENV: step}) as daemon:
                with pytest.raises((ControlError, OSError)):
                    request(sock, {"op": "remove", "content_id": content_id})
                killed(daemon)
        with controller_daemon(config):
            listed, records = check_recovered(config)
        assert set(listed) == {7}  # 7's removal never committed, 8's did
        assert [(r["detail"]["op"], r["detail"]["content_ids"], r["detail"]["committed"])
                for r in records if r["action"] == "recover"] == [("remove", [7], False), ("remove", [8], True)]


# -- SIGKILL at random moments of large batches --------------------------------------------

@dataclass(frozen=True)
class Campaign:
    """How many batches of how many intercepts a random-kill campaign runs
    (at least; more, up to three times as many, while fewer than half of
    them were killed before they finished), and the size of the replication
    engine in its filling-up case. The per-commit run keeps every path the soak takes (a kill while staging,
    kills between announcing and concluding, the batch that overfills the
    switch) at a scale that costs minutes, not a quarter of an hour; `make
    soak` runs the full campaign."""

    batch: int
    kills: int
    replication_groups: int


QUICK = Campaign(batch=50, kills=8, replication_groups=120)
SOAK = Campaign(batch=200, kills=20, replication_groups=1000)


def _provision_batch(config: str, first: int, n: int) -> None:
    """Child process: the controller of `config`, started, then one batch of
    n intercepts; says "provisioning" on stdout just before it starts."""
    from controller.service import Controller

    settings = controller_config.load(Path(config))
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    c = Controller(settings.switches, settings.store_path, settings.audit_path)
    c.start()
    print("provisioning", flush=True)
    try:
        c.provision_many([tap(first + i, subject_base=i) for i in range(n)], actor="test-batch")
    except Exception as error:  # a refusal: rolled back, and audited
        print(f"refused: {error}", flush=True)
    print("done", flush=True)
    c.stop()


def batch_child(config: Path, n: int, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """Intercepts 1..n in one batch, by a child controller (killed by the hook at `crash_at`)."""
    env = {**os.environ, CRASH_ENV: crash_at} if crash_at else None
    return subprocess.run(
        [sys.executable, "-c", "import sys; from tests.test_controller_crash import _provision_batch; "
         "_provision_batch(sys.argv[1], 1, int(sys.argv[2]))", str(config), str(n)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)


def _audit_size(audit: Path) -> int:
    try:
        return audit.stat().st_size
    except FileNotFoundError:
        return 0


def _audited(audit: Path, since: int, what: bytes) -> bool:
    """Whether the audit log gained a record holding `what` past offset `since`."""
    with audit.open("rb") as f:
        f.seek(since)
        return what in f.read()


ANNOUNCED = b'"action":"provision-intent"'
CONCLUDED = b'"intent_seq":'  # an outcome record names the intent it concludes


@dataclass
class Batch:
    """What one batch's child did: seconds from starting to provision to its
    write-ahead record (None: none was written) and from there to the record
    of its outcome (None: killed before it), what it said, and whether it ran
    to the end."""

    staging: float | None
    writing: float | None
    output: str
    finished: bool


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL a batch: `after` seconds past its write-ahead record,
    or, if `before_announce`, that many seconds after it starts to provision."""

    after: float
    before_announce: bool = False


def _run_batch(config: Path, first: int, size: int, kill: Kill | None, crash_at: str | None = None) -> Batch:
    """Run one batch in a child and SIGKILL it as `kill` says (None: let it
    finish, or the hook kill it at `crash_at`).

    Kills are timed from the batch's own write-ahead audit record, read as it
    appears, not from a clock measured on an earlier batch: on a loaded
    machine staging alone can outlast a whole earlier batch, and every kill
    would fall before anything was announced (as happened once under load)."""
    audit = config.parent / "state" / "audit.jsonl"
    env = {**os.environ, CRASH_ENV: crash_at} if crash_at else None
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.test_controller_crash import _provision_batch; "
         "_provision_batch(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))", str(config), str(first), str(size)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("provisioning"):
            break
    since = _audit_size(audit)
    started = time.monotonic()
    staging = writing = None
    if kill is not None and kill.before_announce:
        time.sleep(kill.after)
        child.send_signal(signal.SIGKILL)
    else:
        while child.poll() is None and not _audited(audit, since, ANNOUNCED):
            time.sleep(0.002)
        if _audited(audit, since, ANNOUNCED):
            staging = time.monotonic() - started
        if kill is not None:
            time.sleep(kill.after)
            child.send_signal(signal.SIGKILL)
        else:
            while child.poll() is None and not _audited(audit, since, CONCLUDED):
                time.sleep(0.002)
            if staging is not None and _audited(audit, since, CONCLUDED):
                writing = time.monotonic() - started - staging
        child.wait(timeout=300)
    output = "".join(lines) + child.communicate(timeout=300)[0]
    return Batch(staging, writing, output, "done" in output)


@pytest.mark.parametrize("campaign", [QUICK, pytest.param(SOAK, marks=pytest.mark.soak)], ids=["quick", "soak"])
@pytest.mark.parametrize("fills_up", [False, True], ids=["room", "switch-fills-up"])
def test_random_sigkills_mid_batch(target, tmp_path, campaign, fills_up):
    """Batches of intercepts, each killed at a random moment of its run (the
    first is timed, not killed, to know how long one runs): one in five
    while it stages, before it announces anything, the rest at a random
    moment after its write-ahead record. With a switch of fewer replication
    groups than the controller is not told of, the later batches overfill
    it. The batch that first overfills it is killed by the hook right after
    its intent is committed, before the switch could refuse it (a random kill
    may miss that window, as it did once in CI): the restart must install
    what fits, mark the rest refused and come up; the random kills around it
    go on. The seed is fixed, so a failure replays.

    A kill is drawn from a window that starts as long as the timed batch's
    writing and halves each time a kill comes after its batch finished: how
    long a batch writes, and how late this process notices its write-ahead
    record, depend on how busy the machine is, and a small batch writes in
    a tenth of a second."""
    rng = random.Random(1303)
    replication_groups = campaign.replication_groups if fills_up else None
    batch_size = campaign.batch
    with switch_of(target, tmp_path, replication_groups) as sw:
        config = crash_config(tmp_path, sw)
        timed = _run_batch(config, 10_000, batch_size, kill=None)
        assert timed.finished and timed.staging is not None and timed.writing is not None, timed.output[-3000:]
        outcomes = []
        accepted, overfilled, window = batch_size, False, timed.writing
        while len(outcomes) < campaign.kills or (outcomes.count("killed") < campaign.kills // 2
                                                 and len(outcomes) < 3 * campaign.kills):
            first = 10_000 * (len(outcomes) + 2)
            if replication_groups is not None and not overfilled and accepted + batch_size > replication_groups:
                overfilled = True
                batch = _run_batch(config, first, batch_size, kill=None, crash_at="after-store")
            elif rng.random() < 0.2:
                batch = _run_batch(config, first, batch_size,
                                   Kill(rng.uniform(0.0, timed.staging), before_announce=True))
            else:
                batch = _run_batch(config, first, batch_size, Kill(rng.uniform(0.0, window)))
                if batch.finished:
                    window /= 2
            outcomes.append("finished" if batch.finished else "killed")
            with controller_daemon(config):
                listed, records = check_recovered(config)
            accepted = sum(1 for t in listed.values() if not t["refused"])
        assert any(r["action"] == "recover" for r in records)  # kills fell between announcing and concluding
        if replication_groups is None:
            assert outcomes.count("killed") >= campaign.kills // 2, (timed, outcomes)  # most kills fell inside a batch
        else:
            assert overfilled, outcomes
            refused = [c for c, t in listed.items() if t["refused"]]
            assert refused and len(listed) - len(refused) <= replication_groups
            assert any(r["action"] == "switch-refuse" for r in records)
            # Once a refusal showed the switch's size, batches are refused before they are committed.
            assert any(r["action"] == "refuse" and "intent_seq" not in r["detail"] and "does not fit" in
                       r["detail"]["reason"] for r in records)


# -- a switch that cannot hold the intent -------------------------------------------------

GROUPS = 8


def test_committed_intent_the_switch_refuses_still_lets_the_controller_start(target, tmp_path):
    """A batch of 12 intercepts (12 clone sessions) on a switch of 8 groups,
    committed, then the controller killed before writing it (the hook's
    after-store). Every later start reconciles: 8 intercepts installed, 4
    marked refused with the switch's reason in `tap list`, the store and the
    audit log; the controller keeps serving; removing one makes room and the
    watch loop installs a refused one."""
    with switch_of(target, tmp_path, replication_groups=GROUPS) as sw:
        config = crash_config(tmp_path, sw)
        child = batch_child(config, 12, crash_at="after-store")
        assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
        for _ in range(2):  # and again: refusals found once are not found again
            with controller_daemon(config):
                listed, records = check_recovered(config)
                refused = sorted(c for c, t in listed.items() if t["refused"])
                assert len(listed) == 12 and len(refused) == 4, refused
                assert all("s1" in listed[c]["refused"] for c in refused)
                shown = p4tap("--socket", str(tmp_path / "control.sock"), "tap", "list").stdout
                assert shown.count("REFUSED") == 4 and "refused by s1:" in shown
        audited = [r for r in records if r["action"] == "switch-refuse"]
        assert len(audited) == 1 and audited[0]["detail"]["content_ids"] == refused

        with controller_daemon(config):
            sock = tmp_path / "control.sock"
            installed = next(c for c, t in listed.items() if not t["refused"])
            request(sock, {"op": "remove", "content_id": installed})
            deadline = time.time() + 30
            while time.time() < deadline:
                now_refused = [c for c, t in ((t["mediation"]["content_id"], t) for t in request(sock, {"op": "list"}))
                               if t["refused"]]
                if len(now_refused) == 3:
                    break
                time.sleep(0.2)
            assert len(now_refused) == 3, now_refused
            check_recovered(config)
        records = audit_records(tmp_path / "state")
        assert any(r["action"] == "switch-accept" for r in records)


def test_intent_that_will_not_fit_is_refused_before_it_is_committed(target, tmp_path):
    """Told the switch's replication engine size, the controller refuses a
    batch that needs more clone sessions up front, with a clear error:
    nothing is committed, nothing written, the refusal audited."""
    with switch_of(target, tmp_path, replication_groups=GROUPS) as sw:
        config = crash_config(tmp_path, sw, extra=f"replication_groups = {GROUPS}\n")
        child = batch_child(config, 12)
        assert "refused: the batch of 12 intercepts does not fit switch s1: it needs 12 replication groups" \
               in child.stdout, child.stdout + child.stderr
        with controller_daemon(config):
            sock = tmp_path / "control.sock"
            listed, records = check_recovered(config)
            assert listed == {}
            assert [r["action"] for r in records if r["action"] in ("refuse", "provision-intent")] == ["refuse"]
            for content_id in range(1, GROUPS + 1):
                request(sock, {"op": "add", "intercept": codec.intercept_to_dict(*tap(content_id))})
            one_more = p4tap("--socket", str(sock), "tap", "add", "--content-id", "99", "--md", f"{MD_A.ipv4}:7000",
                             "--subject", "192.0.2.99", check=False)
            assert one_more.returncode == 1
            assert "intercept 99 does not fit switch s1: it needs 9 replication groups" in one_more.stderr
            assert "Traceback" not in one_more.stderr
            listed, _ = check_recovered(config)
            assert sorted(listed) == list(range(1, GROUPS + 1))


@needs_net_snmp
def test_refused_intercepts_show_in_the_snmp_tables(target, tmp_path):
    """The MIB side of a refusal: the refused intercept's streams read
    notInService, the installed ones active, and cTap2DebugTable says why."""
    from controller.service import Controller

    with switch_of(target, tmp_path, replication_groups=GROUPS) as sw:
        config = crash_config(tmp_path, sw)
        child = batch_child(config, 10, crash_at="after-store")
        assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
        settings = controller_config.load(config)
        controller = Controller(settings.switches, settings.store_path, settings.audit_path)
        controller.start()
        (tmp_path / "snmp").mkdir()
        snmp = start_agent(tmp_path / "snmp", controller)
        try:
            refused = sorted(controller.refusals())
            assert len(refused) == 2, refused
            installed = sorted(set(range(1, 11)) - set(refused))
            status = snmp.net.get(*(f"{STREAM}.6.{c}.1" for c in range(1, 11))).values()
            assert {c: status[f"{STREAM}.6.{c}.1"] for c in range(1, 11)} == \
                   {c: "INTEGER: 2" if c in refused else "INTEGER: 1" for c in range(1, 11)}
            messages = snmp.net.walk(f"{DEBUG}.4").out
            assert messages.count("refused by switch s1") == len(refused), messages
            mediations = snmp.net.walk(f"{DEBUG}.2").values()
            assert sorted(int(v.split()[-1]) for v in mediations.values()) == refused
            assert installed
        finally:
            snmp.agent.stop()
            controller.stop()
