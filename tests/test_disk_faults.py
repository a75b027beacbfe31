"""A state directory that cannot be written (issue 18): read-only or full at
start, and an audit log whose filesystem is full while the intent store's
still has room, at run time.

- At start, the controller (`p4tap controller run`) and the SNMP agent's
  process (`python -m mib_bridge`, `p4tap snmp run`) exit 1 with the cause in
  one line on stderr, no traceback, whether the state is new or existing.
- At run time, a change the audit log cannot record is refused before the
  intent or a switch is touched, over the control socket and over SNMP, with
  the cause in the answer; the log stays intact and records every change the
  store holds (`p4tap audit verify` checks both); once there is room again,
  changes go through.

Real filesystems, no mocks: a small tmpfs filled to the last byte, a read-only
bind mount, a file bind-mounted from a full tmpfs. Mounting needs root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller import config as controller_config, control
from controller.audit import AuditLog, verify
from controller.control import request
from controller.intent_trail import lagging
from controller.pipeline import P4TAP
from controller.store import IntentStore
from tests.snmp_support import (MED, agent_config, filter_pdu, mediation_pdu, needs_net_snmp, start_agent,
                                stream_pdu, switch_controller)
from tests.test_controller_crash import crash_config, switch_of, tap
from tests.test_controller_deployment import lab_config
from tests.test_disk_full import LONG_ACTOR, Disk, add, ask, controller_on

pytestmark = [
    pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the read-only and full filesystems needs root"),
    pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)"),
]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True, capture_output=True)


@contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Disk]:
    path.mkdir(mode=0o700, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "p4tap-disk-faults", str(path))
    try:
        yield Disk(path)
    finally:
        umount(path)


@contextmanager
def unwritable(state: Path, how: str, existing: bool) -> Iterator[None]:
    """`state` read-only (a read-only bind mount of itself) or full (a tmpfs
    filled to the last byte), holding a store and a log already if `existing`."""
    state.mkdir(mode=0o700, exist_ok=True)
    stage = state.parent / "stage"
    stage.mkdir(mode=0o700)
    if existing:
        IntentStore(stage / "intent.db").close()
        with AuditLog(stage / "audit.jsonl") as log:
            log.append("test", "note")
    if how == "read-only":
        for f in stage.iterdir():
            shutil.copy2(f, state / f.name)
        mount("--bind", "-o", "ro", str(state), str(state))
        try:
            yield
        finally:
            umount(state)
        return
    with tmpfs(state) as disk:
        for f in stage.iterdir():
            shutil.copy2(f, state / f.name)
        disk.fill()
        yield


CAUSE = {"read-only": "Read-only file system", "full": "its filesystem is full"}


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("how", ["read-only", "full"])
@pytest.mark.parametrize("command", ["controller run", "python -m mib_bridge", "p4tap snmp run"])
def test_start_on_a_state_dir_that_cannot_be_written(tmp_path: Path, command: str, how: str, existing: bool) -> None:
    """Nothing is connected: the state is opened before any switch is (the
    switch address is never dialled)."""
    config = lab_config(tmp_path, "127.0.0.1:9")
    snmp = agent_config(tmp_path / "snmp.toml", listen='"127.0.0.1:0"')
    snmp.chmod(0o600)
    argv = {"controller run": ["-m", "p4tap_cli", "controller", "run", "--config", str(config)],
            "python -m mib_bridge": ["-m", "mib_bridge", "--config", str(snmp), "--controller-config", str(config)],
            "p4tap snmp run": ["-m", "p4tap_cli", "snmp", "run", "--config", str(config), "--agent-config", str(snmp)]}
    with unwritable(controller_config.load(config).state_dir, how, existing):
        done = subprocess.run([sys.executable, *argv[command]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and CAUSE[how] in lines[0] and "intent.db" in lines[0], done.stderr


@contextmanager
def audit_log_on_full_disk(state: Path, tmp_path: Path) -> Iterator[Disk]:
    """The audit log is a file of a small tmpfs (bind-mounted onto its name in
    `state`) that the caller fills; the store beside it keeps its room."""
    state.mkdir(mode=0o700, exist_ok=True)
    with tmpfs(tmp_path / "logdisk") as disk:
        (disk.path / "audit.jsonl").touch(mode=0o600)
        (state / "audit.jsonl").touch(mode=0o600)
        mount("--bind", str(disk.path / "audit.jsonl"), str(state / "audit.jsonl"))
        try:
            yield disk
        finally:
            umount(state / "audit.jsonl")


def assert_log_records_the_intent(state: Path) -> None:
    log = state / "audit.jsonl"
    assert verify(log).ok, verify(log).problems
    lag = lagging(log, state / "intent.db")
    assert lag.ok, lag.problems


def test_audit_log_that_cannot_grow_refuses_changes_over_the_control_socket(tmp_path: Path, target: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "_peer", lambda sock: LONG_ACTOR)  # every record needs a page of its own
    with switch_of(target, tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        state = controller_config.load(config).state_dir
        with audit_log_on_full_disk(state, tmp_path) as disk, controller_on(config) as (controller, sock):
            assert ask(add, sock, 42)[0]
            disk.fill()
            content_id = 43
            done, answer = ask(add, sock, content_id)
            assert not done, answer
            assert "not changed: the audit log cannot record it" in answer and "No space left" in answer, answer
            assert "\n" not in answer
            held = {m.content_id for m, _, _ in controller.intercepts()}
            assert content_id not in held and 42 in held
            removal, answer = ask(request, sock, {"op": "remove", "content_id": 42})
            assert not removal and "audit log cannot record" in answer, answer
            assert 42 in {m.content_id for m, _, _ in controller.intercepts()}
            for name in controller.switches:  # the switches hold exactly the intent: nothing to correct
                assert not controller.reconcile(name), name
            assert_log_records_the_intent(state)
            disk.free()
            assert ask(request, sock, {"op": "remove", "content_id": 42})[0]
            assert ask(add, sock, content_id)[0]
            assert_log_records_the_intent(state)


@needs_net_snmp
def test_audit_log_that_cannot_grow_refuses_snmp_sets(tmp_path: Path, target: str) -> None:
    home = tmp_path / "home"
    with switch_of(target, tmp_path) as switch, audit_log_on_full_disk(home, tmp_path) as disk:
        controller = switch_controller(home, switch)
        controller.start()
        running = start_agent(home, controller, listen='"127.0.0.1:0"')
        try:
            for pdu in (mediation_pdu(201), filter_pdu(201, 1, src="192.0.2.10"), stream_pdu(201, 1)):
                assert running.net.set(*pdu).code == 0
            disk.fill()
            refused = None
            for content_id in range(202, 302):
                for pdu in (mediation_pdu(content_id), filter_pdu(content_id, 1, src="192.0.2.11"),
                            stream_pdu(content_id, 1)):
                    result = running.net.set(*pdu)
                    if result.code != 0:
                        refused = result
                        break
                if refused is not None:
                    break
            assert refused is not None, "the audit log never filled"
            assert refused.error is not None and refused.error[0] == "commitFailed", refused.err
            held = {m.content_id for m, _, _ in controller.intercepts()}
            assert content_id not in held and 201 in held
            debug = running.net.walk("1.3.6.1.4.1.9.9.399.1.3.3").out
            assert "the audit log cannot record it" in debug and "No space left" in debug, debug
            assert "= INTEGER: 1" in running.net.get(f"{MED}.13.201").out
            assert_log_records_the_intent(home)
        finally:
            running.agent.stop()
            controller.stop()
        assert_log_records_the_intent(home)


def test_an_expiry_is_not_held_up_by_an_audit_log_that_cannot_grow(tmp_path: Path, target: str) -> None:
    """A warrant's end is not negotiable: past its Timeout the intercept leaves
    the intent and the switch even when the log has no room; its records are
    owed and written, in order and at the seq the store's mark names, once
    there is room."""
    with switch_of(target, tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        state = controller_config.load(config).state_dir
        with audit_log_on_full_disk(state, tmp_path) as disk, controller_on(config) as (controller, sock):
            mediation, streams = tap(42)
            soon = datetime.now(timezone.utc) + timedelta(seconds=3)
            controller.provision(dataclasses.replace(mediation, timeout=soon), streams, actor="test")
            disk.fill()
            while True:  # use up the room left in the log's last page
                try:
                    controller.audit.append("test", "pad")
                except OSError:
                    break
            deadline = time.monotonic() + 60
            while 42 in {m.content_id for m, _, _ in controller.intercepts()}:
                assert time.monotonic() < deadline, "the expiry waited for the disk"
                time.sleep(0.1)
            for name in controller.switches:  # and no switch holds it
                assert not controller.reconcile(name), name
            assert '"expire-intent"' not in (state / "audit.jsonl").read_text()  # not recorded yet
            disk.free()
            assert ask(add, sock, 43)[0]
            records = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
            expiry = next(r for r in records if r["action"] == "expire-intent")
            assert expiry["detail"]["content_id"] == 42 and "could not take it" in expiry["detail"]["late"]
            outcome = next(r for r in records if r["detail"].get("intent_seq") == expiry["seq"])
            assert outcome["action"] == "expire" and outcome["seq"] > expiry["seq"]
            assert_log_records_the_intent(state)
