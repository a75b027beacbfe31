"""Bad requests, as an operator or a script would send them, against a running
controller (`p4tap controller run`) on the softswitch and bmv2 where present:
each gets a one-line error and a non-zero exit, and changes nothing; a refusal
the controller sees is audited (one `refuse` record). Issue 18, "Requests"."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import codec
from tests.test_controller_crash import audit_records, crash_config, switch_of, tap  # noqa: F401 (fixture)
from tests.test_controller_deployment import controller_daemon, p4tap

pytestmark = pytest.mark.skipif(not (Path(__file__).parent.parent / "build").exists(), reason="no build/")

SUBJECT = "192.0.2.10"
MD = "203.0.113.10:7000"


@pytest.fixture
def running(target, tmp_path) -> Iterator[Path]:
    """A controller on a switch of `target`, with intercept 42 installed; its config."""
    with switch_of(target, tmp_path) as switch:
        config = crash_config(tmp_path, switch)
        with controller_daemon(config):
            p4tap("--config", str(config), "tap", "add", "--content-id", "42", "--md", MD, "--subject", SUBJECT)
            yield config


def state_of(config: Path) -> tuple[str, list[dict]]:
    """What the controller holds (as `tap list --json` prints it) and its audit records."""
    return p4tap("--config", str(config), "tap", "list", "--json").stdout, audit_records(config.parent / "state")


def assert_refused(config: Path, before: tuple[str, list[dict]], *, audited: bool = True) -> None:
    intents, records = state_of(config)
    assert intents == before[0], "a refused request changed the intercepts"
    new = records[len(before[1]):]
    assert [r["action"] for r in new] == (["refuse"] if audited else []), new
    if audited:
        assert new[0]["actor"].startswith("cli:") and new[0]["detail"]["reason"]


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    # argparse's usage (its first line and indented continuations) may precede the one error line
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("option,value", [("--subject", "192.0.2.300"), ("--subject", "subject"),
                                          ("--md", "203.0.113.10"), ("--md", "203.0.113.10:http"),
                                          ("--md", "203.0.113.10:70000"), ("--lifetime", "1e12"),
                                          ("--lifetime", "nan"), ("--lifetime", "-5")])
def test_bad_tap_add_option_is_a_usage_error(running, option, value):
    before = state_of(running)
    args = {"--content-id": "43", "--md": MD, "--subject": SUBJECT, option: value}
    result = p4tap("--config", str(running), "tap", "add", *[x for kv in args.items() for x in kv], check=False)
    line = one_line_error(result, 2)
    assert option in line
    assert line.count(option) == 1, line  # not "argument --md: --md: ..."
    assert_refused(running, before, audited=False)


def test_existing_content_id_is_refused_unless_replace(running):
    before = state_of(running)
    result = p4tap("--config", str(running), "tap", "add", "--content-id", "42", "--md", "203.0.113.10:7001",
                   "--subject", "192.0.2.11", check=False)
    assert result.returncode != 0 and "exists" in one_line_error(result, result.returncode)
    assert_refused(running, before)
    p4tap("--config", str(running), "tap", "add", "--replace", "--content-id", "42", "--md", "203.0.113.10:7001",
          "--subject", "192.0.2.11")
    taps = json.loads(state_of(running)[0])
    assert [t["mediation"]["dest_port"] for t in taps] == [7001]
    assert state_of(running)[1][-1]["action"] != "refuse"


def test_intercept_without_enabled_stream_is_refused(running, tmp_path):
    before = state_of(running)
    m, streams = tap(44)
    intercept = codec.intercept_to_dict(m, [])
    (tmp_path / "empty.json").write_text(json.dumps(intercept))
    result = p4tap("--config", str(running), "tap", "add", "--json", str(tmp_path / "empty.json"), check=False)
    assert result.returncode != 0 and "no enabled stream" in one_line_error(result, result.returncode)
    assert_refused(running, before)


def test_counters_of_missing_intercept_fail(running):
    result = p4tap("--config", str(running), "tap", "counters", "999999", check=False)
    assert result.returncode != 0 and "999999" in one_line_error(result, result.returncode)


def raw_request(sock_path: Path, data: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(sock_path))
        s.sendall(data)
        answer = s.makefile("rb").readline()
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1, answer
    return json.loads(answer)


@pytest.mark.parametrize("data", [b"[1, 2]\n", b'{"op": "add"}\n', b'{"op": "add", "intercept": 5}\n',
                                  b"not json\n", b'{"op": "list", "pad": "' + b"x" * (1 << 20) + b'"}\n'],
                         ids=["array", "no-intercept", "intercept-not-object", "not-json", "over-1MiB"])
def test_malformed_control_request_gets_an_error_and_an_audit(running, data):
    before = state_of(running)
    reply = raw_request(running.parent / "control.sock", data)
    assert reply["ok"] is False and reply["error"]
    assert_refused(running, before)
