"""The audit log on real files: the hash chain verifies, and every kind of
tampering (edit, deletion, reordering) and crash (torn line) is reported at
its line; appends from threads and across restarts keep one valid chain."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller import audit
from controller.audit import GENESIS, AuditError, AuditLog, verify

REPO = Path(__file__).resolve().parents[1]
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")
ACTORS = ["snmp:user mdUser from 192.0.2.7", "cli:root", "controller", "snmp:user lea from 2001:db8::7"]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def write_log(path: Path, n: int = 5) -> list[dict]:
    with AuditLog(path) as log:
        return [log.append(ACTORS[i % len(ACTORS)], ["provision", "remove", "expire", "refuse"][i % 4],
                           content_id=i + 1, switches=["access-0"], md="203.0.113.10:5000")
                for i in range(n)]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def rewrite(path: Path, new_lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in new_lines))


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# -- the chain -----------------------------------------------------------------


def test_chain_is_well_formed_and_verifies(path: Path):
    written = write_log(path, 6)
    raw = lines(path)
    assert len(raw) == 6
    prev = "0" * 64
    for n, (line, record) in enumerate(zip(raw, written), start=1):
        obj = json.loads(line)
        assert obj == record  # append returns exactly what is on disk
        assert set(obj) == {"seq", "time", "actor", "action", "detail", "prev", "hash"}
        assert obj["seq"] == n
        assert TIME_RE.fullmatch(obj["time"]), obj["time"]
        assert obj["prev"] == prev
        body = {k: v for k, v in obj.items() if k != "hash"}
        assert obj["hash"] == hashlib.sha256(canonical(body)).hexdigest()
        assert line == canonical(obj)
        prev = hashlib.sha256(line).hexdigest()
    result = verify(path)
    assert (result.ok, result.records, result.problems) == (True, 6, [])
    assert result.head == prev


def test_a_batch_is_one_write_and_one_fsync_and_chains_as_single_appends(path: Path, monkeypatch):
    """append_many (the SNMP agent's batches of refusals): the records chain
    exactly as appends would, and the whole batch costs one fsync."""
    write_log(path, 2)
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(audit.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    with AuditLog(path) as log:
        fsyncs.clear()
        written = log.append_many([("snmp:? from 192.0.2.9", "snmp-refuse", {"count": n}) for n in range(1, 6)])
        assert len(fsyncs) == 1 and log.seq == 7
        assert log.append_many([]) == [] and len(fsyncs) == 1
        with pytest.raises(ValueError):
            log.append_many([("", "snmp-refuse", {})])
    assert [r["seq"] for r in written] == [3, 4, 5, 6, 7]
    assert [json.loads(line) for line in lines(path)[2:]] == written
    result = verify(path)
    assert (result.ok, result.records) == (True, 7)


def test_empty_log_verifies(path: Path):
    AuditLog(path).close()
    assert path.read_bytes() == b""
    result = verify(path)
    assert (result.ok, result.records, result.head) == (True, 0, GENESIS)


def test_detail_values_are_encoded_and_kept(path: Path):
    with AuditLog(path) as log:
        record = log.append("cli:root", "provision", content_id=7, actor="not the actor",
                            md=ipaddress.ip_address("2001:db8::10"), timeout=datetime(2031, 1, 1, tzinfo=timezone.utc),
                            streams={3, 1, 2}, nested={"a": [1, None, True]})
    assert record["actor"] == "cli:root"
    assert record["detail"] == {"content_id": 7, "actor": "not the actor", "md": "2001:db8::10",
                                "timeout": "2031-01-01T00:00:00+00:00", "streams": [1, 2, 3],
                                "nested": {"a": [1, None, True]}}
    assert verify(path).ok


def test_unencodable_detail_writes_nothing(path: Path):
    with AuditLog(path) as log:
        log.append("cli:root", "provision", content_id=1)
        with pytest.raises(TypeError):
            log.append("cli:root", "provision", thing=object())
        with pytest.raises(ValueError):
            log.append("", "provision")
        log.append("cli:root", "remove", content_id=1)
    assert [json.loads(x)["seq"] for x in lines(path)] == [1, 2]
    assert verify(path).ok


def test_clock_is_recorded_in_utc(path: Path):
    local = datetime(2031, 5, 6, 9, 8, 7, 654321, tzinfo=timezone(timedelta(hours=2)))
    with AuditLog(path, clock=lambda: local) as log:
        assert log.append("controller", "expire", content_id=1)["time"] == "2031-05-06T07:08:07.654321+00:00"
    with AuditLog(path, clock=lambda: datetime(2031, 1, 1)) as log, pytest.raises(ValueError, match="timezone"):
        log.append("controller", "expire")


# -- tampering --------------------------------------------------------------------


@pytest.mark.parametrize("field", ["seq", "time", "actor", "action", "detail", "prev", "hash"])
@pytest.mark.parametrize("line_no", [1, 3, 5])
def test_editing_any_field_of_any_record_is_detected_at_that_line(path: Path, field: str, line_no: int):
    write_log(path, 5)
    raw = lines(path)
    obj = json.loads(raw[line_no - 1])
    obj[field] = {
        "seq": obj["seq"] + 10,
        "time": "2020-01-01T00:00:00.000000+00:00",
        "actor": "cli:nobody",
        "action": "remove",
        "detail": {**obj["detail"], "content_id": 999},
        "prev": "f" * 64,
        "hash": "e" * 64,
    }[field]
    raw[line_no - 1] = canonical(obj)  # hash left as it was (except when it is the edit)
    rewrite(path, raw)
    result = verify(path)
    assert not result.ok
    assert any(p.startswith(f"line {line_no}: hash mismatch") for p in result.problems), result.problems


@pytest.mark.parametrize("line_no", [1, 2, 4])
def test_edit_with_recomputed_hash_is_caught_by_the_next_prev(path: Path, line_no: int):
    write_log(path, 5)
    raw = lines(path)
    obj = json.loads(raw[line_no - 1])
    obj["detail"]["content_id"] = 999
    obj["hash"] = audit.record_hash(obj)
    raw[line_no - 1] = canonical(obj)
    rewrite(path, raw)
    result = verify(path)
    assert not result.ok
    assert result.problems == [f"line {line_no + 1}: prev mismatch: does not follow line {line_no}: "
                               "a record before it was deleted, inserted or reordered"]


def test_rewriting_the_last_record_changes_only_the_head(path: Path):
    """The documented limit: the chain alone cannot catch it; an anchored head can."""
    write_log(path, 3)
    head = verify(path).head
    raw = lines(path)
    obj = json.loads(raw[-1])
    obj["actor"] = "cli:nobody"
    obj["hash"] = audit.record_hash(obj)
    raw[-1] = canonical(obj)
    rewrite(path, raw)
    result = verify(path)
    assert result.ok and result.head != head


def test_reformatted_line_is_reported(path: Path):
    write_log(path, 3)
    raw = lines(path)
    raw[1] = json.dumps(json.loads(raw[1]), indent=None).encode()  # same content, other spacing
    rewrite(path, raw)
    problems = verify(path).problems
    assert problems[0].startswith("line 2: not in canonical form")
    assert problems[1].startswith("line 3: prev mismatch")


@pytest.mark.parametrize("deleted", [1, 3])
def test_deleting_a_record_is_detected(path: Path, deleted: int):
    write_log(path, 5)
    raw = lines(path)
    del raw[deleted - 1]
    rewrite(path, raw)
    result = verify(path)
    assert not result.ok
    assert result.records == 4
    assert any(p.startswith(f"line {deleted}: prev mismatch") for p in result.problems), result.problems
    assert f"line {deleted}: seq gap: seq {deleted + 1}, expected {deleted} (records missing before it)" \
        in result.problems


def test_reordering_is_detected(path: Path):
    write_log(path, 5)
    raw = lines(path)
    raw[1], raw[2] = raw[2], raw[1]
    rewrite(path, raw)
    result = verify(path)
    assert not result.ok
    assert any(p.startswith("line 2: prev mismatch") for p in result.problems)
    assert any(p.startswith("line 3: seq gap: seq 2, expected 4 (repeated or out of order)") for p in result.problems)


def test_replayed_record_is_detected(path: Path):
    write_log(path, 3)
    raw = lines(path)
    raw.append(raw[1])
    rewrite(path, raw)
    problems = verify(path).problems
    assert any(p.startswith("line 4: prev mismatch") for p in problems)
    assert any(p.startswith("line 4: seq gap") for p in problems)


@pytest.mark.parametrize("garbage, what", [(b"not json", "bad JSON"), (b"[1,2]", "not a record"),
                                           (b'{"seq":1}', "malformed record"), (b"", "empty line")])
def test_foreign_lines_are_reported(path: Path, garbage: bytes, what: str):
    write_log(path, 2)
    raw = lines(path)
    raw.insert(1, garbage)
    rewrite(path, raw)
    problems = verify(path).problems
    assert problems[0].startswith(f"line 2: {what}"), problems
    assert verify(path).records == 2


# -- crashes ----------------------------------------------------------------------


def test_torn_last_line_is_reported(path: Path):
    write_log(path, 3)
    full = canonical({"seq": 4, "half": "written"})
    with open(path, "ab") as f:
        f.write(full[: len(full) // 2])
    result = verify(path)
    assert not result.ok and result.records == 3
    assert result.problems == [f"line 4: torn last line: {len(full) // 2} bytes without a newline "
                               "(a write was cut off)"]


def test_reopen_after_torn_line_cuts_it_and_says_so(path: Path):
    write_log(path, 3)
    head = verify(path).head
    torn = b'{"action":"provision","actor":"cli:root","det'
    with open(path, "ab") as f:
        f.write(torn)
    with AuditLog(path) as log:
        recover = json.loads(lines(path)[3])
        record = log.append("cli:root", "remove", content_id=1)
    # The torn bytes are cut off (the log verifies intact again) and the cut is recorded.
    assert recover["action"] == "audit-recover" and recover["seq"] == 4 and recover["prev"] == head
    assert recover["detail"] == {"invalid_lines": [], "torn": True, "continues_after_seq": 3,
                                 "cut": {"bytes": len(torn), "sha256": hashlib.sha256(torn).hexdigest(),
                                         "start": torn.decode()}}
    assert record["seq"] == 5
    result = verify(path)
    assert result.ok and result.records == 5, result.problems
    # A later restart has nothing more to recover.
    with AuditLog(path) as log:
        assert log.seq == 5
    assert len(lines(path)) == 5


def test_newline_ended_damage_after_the_last_record_stays_as_evidence(path: Path):
    write_log(path, 3)
    with open(path, "ab") as f:
        f.write(b'{"action":"provision","actor":"cli:root","det\n')
    with AuditLog(path) as log:
        log.append("cli:root", "remove", content_id=1)
    recover = json.loads(lines(path)[4])
    assert recover["action"] == "audit-recover" and recover["detail"] == {
        "invalid_lines": [4], "torn": False, "continues_after_seq": 3}
    problems = verify(path).problems
    assert len(problems) == 1 and problems[0].startswith("line 4: bad JSON")


def test_failed_append_leaves_no_torn_line(path: Path, monkeypatch: pytest.MonkeyPatch):
    """ENOSPC part-way through a write (a short write, then the error): the
    file is cut back, so the log stays intact and the next append chains on."""
    real_write = os.write
    with AuditLog(path) as log:
        log.append("cli:root", "provision", content_id=1)
        size = path.stat().st_size

        def half_then_fail(fd: int, data: bytes) -> int:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(audit.os, "write", half_then_fail)
        with pytest.raises(OSError, match="No space"):
            log.append("cli:root", "provision", content_id=2)
        assert path.stat().st_size == size and verify(path).ok
        monkeypatch.setattr(audit.os, "write", real_write)
        record = log.append("cli:root", "provision", content_id=2)
    assert record["seq"] == 2
    result = verify(path)
    assert result.ok and result.records == 2, result.problems


def test_failed_fsync_takes_the_records_back(path: Path, monkeypatch: pytest.MonkeyPatch):
    real_fsync = os.fsync
    with AuditLog(path) as log:
        log.append("cli:root", "provision", content_id=1)
        size = path.stat().st_size
        calls = []

        def fail_once(fd: int) -> None:
            calls.append(fd)
            if len(calls) == 1:
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(audit.os, "fsync", fail_once)
        with pytest.raises(OSError, match="Input/output"):
            log.append_many([("cli:root", "provision", {"content_id": 2}), ("cli:root", "remove", {"content_id": 2})])
        assert path.stat().st_size == size
        assert log.append("cli:root", "provision", content_id=3)["seq"] == 2
    assert verify(path).ok


def test_recovery_record_that_cannot_be_written_at_open_goes_ahead_of_the_next(path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    write_log(path, 2)
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"ha')
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit.os, "write", full)
    with AuditLog(path) as log:  # opens all the same: the torn tail is cut, the record owed
        assert verify(path).ok and log.seq == 2
        monkeypatch.setattr(audit.os, "write", real_write)
        record = log.append("cli:root", "remove", content_id=1)
    assert record["seq"] == 4 and record["action"] == "remove"
    assert [json.loads(line)["action"] for line in lines(path)[2:]] == ["audit-recover", "remove"]
    assert verify(path).ok


# -- concurrency and restarts -----------------------------------------------------


def test_appends_from_several_threads_form_one_chain(path: Path):
    threads_n, per_thread = 8, 60
    barrier = threading.Barrier(threads_n)
    with AuditLog(path) as log:
        def worker(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                log.append(f"snmp:user t{t} from 192.0.2.{t + 1}", "provision", thread=t, i=i)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify(path)
    assert (result.ok, result.records) == (True, threads_n * per_thread), result.problems[:5]
    records = [json.loads(x) for x in lines(path)]
    assert [r["seq"] for r in records] == list(range(1, threads_n * per_thread + 1))
    assert sorted((r["detail"]["thread"], r["detail"]["i"]) for r in records) == [
        (t, i) for t in range(threads_n) for i in range(per_thread)]


def test_restart_continues_the_chain(path: Path):
    write_log(path, 3)
    with AuditLog(path) as log:
        assert log.seq == 3 and log.head == verify(path).head
        log.append("controller", "reconcile-install", switch="access-0", inserted=4)
    with AuditLog(path) as log:
        log.append("controller", "reconcile-delete", switch="access-0", deleted=1)
    result = verify(path)
    assert (result.ok, result.records) == (True, 5)
    assert [json.loads(x)["seq"] for x in lines(path)] == [1, 2, 3, 4, 5]


def test_long_log_reopens_from_its_tail(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(audit.os, "fsync", lambda fd: None)  # only the size matters here, not durability
    with AuditLog(path) as log:
        for i in range(3000):  # > 64 KiB, so the tail is read in blocks
            log.append("controller", "expire", content_id=i, pad="x" * (i % 97))
    assert path.stat().st_size > 4 * 64 * 1024
    with AuditLog(path) as log:
        assert log.seq == 3000
        log.append("controller", "expire", content_id=3000)
    assert verify(path).ok


def test_second_writer_is_refused(path: Path):
    with AuditLog(path):
        with pytest.raises(AuditError, match="another process"):
            AuditLog(path)
    AuditLog(path).close()  # released on close


def test_closed_log_refuses_appends(path: Path):
    log = AuditLog(path)
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append("cli:root", "provision")


# -- permissions ------------------------------------------------------------------


def test_log_is_created_owner_only_even_with_a_lax_umask(path: Path):
    old = os.umask(0)
    try:
        write_log(path, 1)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_log_readable_by_others_is_refused(path: Path):
    write_log(path, 1)
    os.chmod(path, 0o644)
    with pytest.raises(AuditError, match=f"chmod 600 {path}"):
        AuditLog(path)


# -- the command line ---------------------------------------------------------------


def test_cli_intact(path: Path, capsys: pytest.CaptureFixture[str]):
    write_log(path, 4)
    assert audit.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "intact: 4 records" in out and verify(path).head in out


def test_cli_tampered(path: Path, capsys: pytest.CaptureFixture[str]):
    write_log(path, 4)
    raw = lines(path)
    del raw[1]
    rewrite(path, raw)
    assert audit.main(["verify", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "NOT INTACT" in captured.out and "line 2" in captured.out
    assert "line 2: prev mismatch" in captured.err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert audit.main(["verify", str(tmp_path / "absent.jsonl")]) == 2
    assert "cannot check" in capsys.readouterr().err


def test_cli_as_a_module_with_help(path: Path):
    write_log(path, 2)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = lambda *args: subprocess.run([sys.executable, "-m", "controller.audit", *args],  # noqa: E731
                                       cwd=REPO, env=env, capture_output=True, text=True)
    ok = run("verify", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    helped = run("verify", "--help")
    assert helped.returncode == 0
    for word in ("hash", "prev", "seq", "torn", "Exit status"):
        assert word in helped.stdout
    with open(path, "ab") as f:
        f.write(b'{"seq":')
    torn = run("verify", str(path))
    assert torn.returncode == 1 and "torn" in torn.stdout
    assert run().returncode == 2  # no command: usage error
