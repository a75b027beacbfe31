"""A disk that fills in the middle of a change (issue 26, part 3).

The controller's state (intent store and audit log) lives on a small tmpfs the
test mounts; the disk is filled at each step of a change (before the request,
after the write-ahead record, after the store commit, between switch writes,
after the switch writes, after the outcome record). Whatever step it fills at:
- the requester gets an answer (never "closed the connection without answering");
- the audit log verifies intact: no torn line is left;
- every intent record ends with its outcome (written late, ahead of the next
  change, once there is room) or, after a restart, a `recover` record;
- what the requester was told matches what the store holds.

Mounting needs root: without it the module skips, saying so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller import codec, config as controller_config, control, crashpoints
from controller.audit import verify
from controller.control import ControlError, ControlServer, request
from controller.crashpoints import STEPS
from controller.pipeline import P4TAP
from controller.service import Controller
from tests.test_controller_crash import crash_config, switch_of, tap

pytestmark = [
    pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the small tmpfs the disk-full tests fill needs root"),
    pytest.mark.skipif(shutil.which("mount") is None, reason="no mount(8)"),
]

SIZE = "3m"  # the state's filesystem: room for the store, its WAL and the log, little more
# tmpfs hands out whole pages: a record shorter than the slack of the log's
# last page would still fit on a "full" disk. Requesters with a name longer
# than a page make every record need a new page, so a full disk refuses each.
LONG_ACTOR = "cli:" + "x" * 5000


class Disk:
    """A tmpfs of SIZE at `path`; `fill` takes every free byte, `free` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"
        self.filled = False

    def fill(self) -> None:
        self.filled = True
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 16, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def long_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "_peer", lambda sock: LONG_ACTOR)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "p4tap-disk-full", str(state)],
                   check=True, capture_output=True)
    try:
        yield Disk(state)
    finally:
        subprocess.run(["umount", str(state)], check=True, capture_output=True)


@contextmanager
def controller_on(config: Path) -> Iterator[tuple[Controller, Path]]:
    """The controller of `config`, in this process, with its control socket."""
    settings = controller_config.load(config)
    controller = Controller(settings.switches, settings.store_path, settings.audit_path)
    controller.start()
    server = ControlServer(settings.control_socket, controller)
    server.start()
    try:
        yield controller, settings.control_socket
    finally:
        server.close()
        controller.stop()


def add(sock: Path, content_id: int, replace: bool = False) -> dict:
    mediation, streams = tap(content_id)
    return request(sock, {"op": "add", "intercept": codec.intercept_to_dict(mediation, streams), "replace": replace})


def ask(call, *args) -> tuple[bool, str]:
    """(whether the request succeeded, the answer's text): any answer at all is the point."""
    try:
        return True, json.dumps(call(*args))
    except ControlError as error:
        assert "without answering" not in str(error), error
        return False, str(error)


def records(disk: Disk) -> list[dict]:
    return [json.loads(line) for line in (disk.path / "audit.jsonl").read_text().splitlines()]


def assert_every_change_concluded(log: list[dict]) -> None:
    """Every intent record is followed by exactly one record naming it (outcome,
    refusal or recover), and the log is intact."""
    for record in log:
        if record["action"].endswith("-intent"):
            closing = [r for r in log if r["detail"].get("intent_seq") == record["seq"]]
            assert len(closing) == 1, (record, closing)


@pytest.mark.parametrize("op", ["add", "remove"])
@pytest.mark.parametrize("step", ["request", *STEPS])
def test_disk_fills_at_each_step_of_a_change(disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             step: str, op: str) -> None:
    with switch_of("softswitch", tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        with controller_on(config) as (controller, sock):
            add(sock, 42)
            real_reached = crashpoints.reached

            def fill_at(reached: str) -> None:
                if reached == step:
                    disk.fill()
                real_reached(reached)

            monkeypatch.setattr(crashpoints, "reached", fill_at)
            if step == "request":
                disk.fill()
            done, answer = ask(add, sock, 43) if op == "add" else ask(request, sock, {"op": "remove", "content_id": 42})
            monkeypatch.setattr(crashpoints, "reached", real_reached)
            assert verify(disk.path / "audit.jsonl").ok, verify(disk.path / "audit.jsonl").problems
            held = {m.content_id for m, _, _ in controller.intercepts()}
            changed = (43 in held) if op == "add" else (42 not in held)
            assert done == changed, (answer, held)
            if step == "request":  # the write-ahead record could not be written: nothing changed
                assert not done and "audit log cannot record" in answer, answer
        # stopped with the disk still full: an owed outcome stays unwritten
        disk.free()
        with controller_on(config) as (controller, sock):  # the restart recovers; the next change goes through
            assert ({m.content_id for m, _, _ in controller.intercepts()} >= {43}) == (op == "add" and done)
            add(sock, 44)
        log = records(disk)
    assert verify(disk.path / "audit.jsonl").ok, verify(disk.path / "audit.jsonl").problems
    assert_every_change_concluded(log)
    intents = [r for r in log if r["action"].endswith("-intent")]
    last_change = intents[-2]  # the one the disk filled in (the last is 44's)
    if step != "request":
        concluded = next(r for r in log if r["detail"].get("intent_seq") == last_change["seq"])
        if concluded["action"] == "recover":  # its outcome never reached the log: the restart says what became of it
            assert concluded["detail"]["committed"] == changed, concluded
        else:
            assert concluded["action"] == ({"add": "provision", "remove": "remove"}[op] if changed else "refuse")
        if disk.filled and step in ("after-store", "mid-write", "after-write"):  # done, but not its outcome
            assert concluded["action"] == "recover" and changed, concluded


def test_outcome_owed_on_a_full_disk_goes_ahead_of_the_next_change(disk: Disk, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with switch_of("softswitch", tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        with controller_on(config) as (controller, sock):
            real_reached = crashpoints.reached

            def fill_at(reached: str) -> None:
                if reached == "after-write":
                    disk.fill()
                real_reached(reached)

            monkeypatch.setattr(crashpoints, "reached", fill_at)
            assert ask(add, sock, 42)[0]  # installed: the requester is told so
            monkeypatch.setattr(crashpoints, "reached", real_reached)
            done, answer = ask(add, sock, 43)  # still full: refused, nothing changed
            assert not done and "audit log cannot record" in answer
            disk.free()
            assert ask(add, sock, 43)[0]
            log = records(disk)
    actions = [r["action"] for r in log if r["action"] != "reconcile"]
    assert actions[-4:] == ["provision-intent", "provision", "provision-intent", "provision"], actions
    assert_every_change_concluded(log)
    assert verify(disk.path / "audit.jsonl").ok


def test_refused_request_is_answered_when_its_refusal_cannot_be_audited(disk: Disk, tmp_path: Path) -> None:
    with switch_of("softswitch", tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        with controller_on(config) as (controller, sock):
            add(sock, 42)
            disk.fill()
            done, answer = ask(add, sock, 42)  # a re-add without replace
            assert not done and "exists" in answer and "could not be audited" in answer, answer
            done, answer = ask(request, sock, {"op": "frobnicate"})
            assert not done and "unknown operation" in answer
            sent = ask(lambda: _raw(sock, b"not json\n"))
            assert "not JSON" in sent[1] and "could not be audited" in sent[1], sent
            assert verify(disk.path / "audit.jsonl").ok
            disk.free()


def _raw(sock: Path, line: bytes) -> dict:
    import socket as sockets
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as s:
        s.connect(str(sock))
        s.sendall(line)
        reply = s.makefile("rb").readline()
    if not reply:
        raise ControlError("the controller closed the connection without answering")
    answer = json.loads(reply)
    if not answer["ok"]:
        raise ControlError(answer["error"])
    return answer["result"]
