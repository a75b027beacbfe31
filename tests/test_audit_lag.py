"""`p4tap audit verify` finds an audit log that lags the intent (issue 18).

The hash chain alone cannot see records cut off at the end of the log, nor a
store changed around the controller: the chain of what is left is intact.
Each change marks the intercepts it touches with its write-ahead record's seq
in the store (controller.intent_trail), and verify checks the log against the
store beside it: non-zero exit, one line naming the content ids.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller import config as controller_config
from controller.pipeline import P4TAP
from controller.service import Controller
from controller.store import IntentStore
from p4tap_cli.main import main as p4tap
from tests.test_controller_crash import crash_config, switch_of, tap

pytestmark = pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`")


@contextmanager
def controller_of(config: Path) -> Iterator[Controller]:
    settings = controller_config.load(config)
    settings.state_dir.mkdir(mode=0o700, exist_ok=True)
    controller = Controller(settings.switches, settings.store_path, settings.audit_path)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def state(tmp_path: Path, target: str) -> Iterator[tuple[Path, Path]]:
    """(config, state dir) of a controller on each switch target that
    provisioned 42, 43 and 44 and removed 42."""
    with switch_of(target, tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        with controller_of(config) as controller:
            for content_id in (42, 43, 44):
                controller.provision(*tap(content_id), actor="test")
            assert controller.remove(42, actor="test")
        yield config, controller_config.load(config).state_dir


def verify(log: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    status = p4tap(["audit", "verify", str(log), *extra])
    out = capsys.readouterr()
    return status, out.out, out.err


def cut_log_before(log: Path, action: str, content_id: int) -> None:
    """Drop the log's records from the intent record of `action` on `content_id` on:
    what is left is a valid chain, as if the log had lost its end."""
    lines = log.read_bytes().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    at = next(i for i, r in enumerate(records) if r["action"] == action
              and content_id in r["detail"].get("content_ids", [r["detail"].get("content_id")]))
    log.write_bytes(b"".join(lines[:at]))


def test_a_log_that_kept_every_change_verifies(state, capsys) -> None:
    _, state_dir = state
    status, out, err = verify(state_dir / "audit.jsonl", capsys)
    assert status == 0, out + err
    assert "intact" in out and "records every change" in out


def test_a_log_that_lost_its_last_changes_lags_the_intent(state, capsys) -> None:
    """Records cut off at the end: the chain of the rest holds, the store's marks do not."""
    _, state_dir = state
    log = state_dir / "audit.jsonl"
    cut_log_before(log, "provision-intent", 44)
    status, out, err = verify(log, capsys)
    assert status == 1, out + err
    verdict = [line for line in out.splitlines() if "LAGS THE INTENT" in line]
    assert len(verdict) == 1, out
    assert "intercept(s) 42, 44 " in verdict[0], verdict  # 44 added, 42 removed, neither recorded
    assert "43" not in verdict[0].split("intercept(s)")[1].split("the log")[0]
    assert "beyond the log's last record" in err


def test_a_store_written_around_the_controller_lags(state, capsys) -> None:
    _, state_dir = state
    with IntentStore(state_dir / "intent.db") as store:
        store.put_intercept(*tap(45))
    status, out, err = verify(state_dir / "audit.jsonl", capsys)
    assert status == 1 and "intercept(s) 45 " in out, out + err
    assert "no audit record" in err


def test_store_named_elsewhere(state, tmp_path: Path, capsys) -> None:
    _, state_dir = state
    log = tmp_path / "elsewhere.jsonl"
    log.write_bytes((state_dir / "audit.jsonl").read_bytes())
    cut_log_before(log, "remove-intent", 42)
    assert verify(log, capsys)[0] == 0  # no store beside it: the chain only
    status, out, err = verify(log, capsys, "--store", str(state_dir / "intent.db"))
    assert status == 1 and "intercept(s) 42 " in out, out + err


def test_a_store_from_before_the_marks_still_verifies_and_is_checked_from_then_on(state, capsys) -> None:
    """An upgrade: a schema 2 store (no marks) beside a log written before them."""
    config, state_dir = state
    db = sqlite3.connect(state_dir / "intent.db")
    db.execute("DROP TABLE intent_marks")
    db.execute("UPDATE schema_version SET version = 2")
    db.commit()
    db.close()
    assert verify(state_dir / "audit.jsonl", capsys)[0] == 0
    with controller_of(config) as controller:  # migrates; marks from now on
        controller.provision(*tap(46), actor="test")
    assert verify(state_dir / "audit.jsonl", capsys)[0] == 0
    cut_log_before(state_dir / "audit.jsonl", "provision-intent", 46)
    status, out, err = verify(state_dir / "audit.jsonl", capsys)
    assert status == 1 and "intercept(s) 46 " in out, out + err


def test_a_lost_store_is_found_from_the_log_at_start(state) -> None:
    """The store is gone: the next start finds, from the log, the intercepts it
    held (43 and 44; 42 was removed) and audits their loss; the agent tells the
    MDs (tests/test_intent_restart.py)."""
    config, state_dir = state
    for name in ("intent.db", "intent.db-wal", "intent.db-shm"):
        (state_dir / name).unlink(missing_ok=True)
    with controller_of(config) as controller:
        assert controller.intent_lost == [43, 44]
        assert controller.intercepts() == []
    lost = [json.loads(line) for line in (state_dir / "audit.jsonl").read_text().splitlines()
            if '"intent-lost"' in line]
    assert [r["detail"]["content_ids"] for r in lost] == [[43, 44]]
    with controller_of(config) as controller:  # said once: the store is no longer new
        assert controller.intent_lost == []


def test_a_store_put_back_from_a_backup_brings_back_nothing_withdrawn(state, capsys) -> None:
    """The store is replaced by a copy taken before later changes (43 removed,
    44 moved to another MD, 45 added): the next start must not install the
    backup's 43 or its old 44 (minimality: authorisations withdrawn or
    replaced since). It removes them from the store as an audited change and
    reports 44 and 45 as lost (ciscoTap2Switchover: the MDs provision them
    again). On the old code the backup's 43 and 44 were installed again."""
    config, state_dir = state
    backup = state_dir.parent / "backup"
    backup.mkdir()
    for name in ("intent.db", "intent.db-wal", "intent.db-shm"):
        if (state_dir / name).exists():
            shutil.copy2(state_dir / name, backup / name)  # owner-only, as the store insists
    with controller_of(config) as controller:
        assert controller.remove(43, actor="test")
        mediation, streams = tap(44)
        controller.provision(dataclasses.replace(mediation, dest_port=mediation.dest_port + 1), streams, actor="test")
        controller.provision(*tap(45), actor="test")
    for name in ("intent.db", "intent.db-wal", "intent.db-shm"):
        (state_dir / name).unlink(missing_ok=True)
        if (backup / name).exists():
            shutil.copy2(backup / name, state_dir / name)
    with controller_of(config) as controller:
        assert {m.content_id for m, _, _ in controller.intercepts()} == set()
        assert controller.intent_lost == [44, 45]
    records = [json.loads(line) for line in (state_dir / "audit.jsonl").read_text().splitlines()]
    removed = [r for r in records if r["action"] == "remove" and "older version" in r["detail"].get("reason", "")]
    assert [r["detail"]["content_ids"] for r in removed] == [[43, 44]]
    assert [r["detail"]["content_ids"] for r in records if r["action"] == "intent-lost"] == [[44, 45]]
    status, out, err = verify(state_dir / "audit.jsonl", capsys)
    assert status == 0, out + err  # the removal is on record: the log accounts for the store
    with controller_of(config) as controller:  # said once
        assert controller.intent_lost == []
