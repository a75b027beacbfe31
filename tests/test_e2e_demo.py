"""The demo's scenario (`make run`), end to end, as an operator runs it: the
switch process (bmv2, or the softswitch where bmv2 is missing or
P4TAP_TARGET says so), the IAP process (controller + SNMPv3 agent), the MD
process (`p4tap md listen`) provisioning over SNMPv3, real traffic between
real hosts, a reference capture of every wire.

Asserted: completeness (every packet of the subject an intercept selects is
in the MD's capture and in each authorised agency's, once), minimality
(nothing else, nothing of the other subscriber, no agency holding another's
CCCID), undetectability (the peer receives byte-identical frames); tshark
reads the capture files and finds the application's own counts in them; the
multi-homed subject is tapped on both paths; a switch killed mid-run ends
in a clear report, the switch restarted and reconciled before the end
(issue 27), and Ctrl-C in a clean machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmv2_topo.demo import CCCID_ALL, CCCID_RTP, Options, Progress, run_demo
from bmv2_topo.layouts import OTHER, PEER, PEER_B, SUBJECT
from bmv2_topo.mininet_topo import mininet_skip_reason
from bmv2_topo.report import render
from bmv2_topo.traffic import RTP_PACKETS, TCP_BYTES
from bmv2_topo.veth import tagged
from controller.pipeline import P4TAP, REPO_ROOT
from tests.conftest import needs_root, needs_switch

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (make setup does)")
needs_pipeline = pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`")


def e2e(test):
    """A test that runs the scenario: it needs a switch target, root, tshark and the compiled pipeline."""
    for mark in (needs_switch, needs_root, needs_tshark, needs_pipeline):
        test = mark(test)
    return test

MININET = pytest.param("mininet", marks=pytest.mark.skipif(mininet_skip_reason() is not None,
                                                            reason=mininet_skip_reason() or ""))


def tshark(path: str, *fields: str, decode: tuple[str, ...] = ()) -> list[list[str]]:
    args = ["tshark", "-r", path]
    for d in decode:
        args += ["-d", d]
    args += ["-T", "fields", "-E", "separator=|"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def check_captures_with_tshark(report, tcp_to: str, rtp_to: str) -> None:
    """What tshark finds in the files: the applications' own counts, and only the subject."""
    files = {(d.who, d.cccid): d.file for d in report.deliveries}
    assert set(files) == {("md", CCCID_ALL), ("lea-a", CCCID_ALL), ("lea-b", CCCID_ALL), ("md", CCCID_RTP),
                          ("lea-b", CCCID_RTP)}
    for (who, cccid), path in files.items():
        rows = tshark(path, "ip.src", "ip.dst", "ip.proto", "tcp.dstport", "tcp.len", "udp.dstport", "tcp.seq")
        delivery = next(d for d in report.deliveries if (d.who, d.cccid) == (who, cccid))
        assert len(rows) == delivery.got.packets == delivery.expected.packets > 0
        assert all(SUBJECT in (src, dst) for src, dst, *_ in rows), f"{path}: a packet not of the subject"
        assert not any(OTHER in (src, dst) for src, dst, *_ in rows)
        if cccid == CCCID_ALL:
            # the stream's bytes by sequence number: a segment the subject sent twice (a retransmission, seen
            # once under load) is copied twice, as sent, and counts once here
            segments = [(int(r[6]), int(r[4])) for r in rows if r[:2] == [SUBJECT, tcp_to] and r[3] == "8080"
                        and int(r[4] or 0)]
            sent = len({b for seq, length in segments for b in range(seq, seq + length)})
            assert sent == TCP_BYTES, f"{path}: {sent} TCP payload bytes from the subject, not {TCP_BYTES}"
            assert any(r[2] == "1" for r in rows), "the pings are there"
        rtp = tshark(path, "rtp.seq", "ip.dst", decode=("udp.port==5004,rtp",))
        assert [int(seq) for seq, dst in rtp if seq and dst == rtp_to] == list(range(RTP_PACKETS))
        if cccid == CCCID_RTP:
            assert len(rtp) == RTP_PACKETS, "4243 selects the RTP flow and nothing else"


def assert_proven(report) -> None:
    text = render(report)
    assert not report.problems, text
    for d in report.deliveries:
        assert d.expected.packets > 0 and d.exact, text
    assert report.other_packets > 0 and report.other_captured == 0, text
    assert not report.agency_violations and not report.unexpected_cccids, text
    assert report.forwarded_checked > 0 and report.forwarded_altered_or_lost == 0, text
    assert report.tcp_bytes_at_peer == TCP_BYTES, text
    assert report.kernel_drops == 0 and report.md_not_written == 0 and report.md_malformed == 0, text
    assert report.ok, text


@e2e
@pytest.mark.parametrize("hosts", ["netns", MININET])
def test_demo_scenario_is_complete_minimal_and_undetectable(tmp_path, hosts):
    report = run_demo(Options("single", hosts, tmp_path / "demo"), Progress())
    assert report.backend == hosts
    assert_proven(report)
    check_captures_with_tshark(report, tcp_to=PEER, rtp_to=PEER)
    lea_a = sorted(p.name for p in (tmp_path / "demo" / "lea-a").iterdir())
    assert lea_a == [f"cccid-{CCCID_ALL}.pcap"], "lea-a is not authorised for the RTP intercept"
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved["ok"] is True


@e2e
def test_multihomed_subject_is_captured_on_both_paths(tmp_path):
    report = run_demo(Options("multihomed", "netns", tmp_path / "demo"), Progress())
    assert_proven(report)
    crossed = {p.switch: 0 for p in report.paths}
    for p in report.paths:
        assert p.got == p.expected, render(report)
        crossed[p.switch] += p.expected
    assert crossed["a"] > 0 and crossed["b"] > 0, "the subject's traffic took both switches"
    # the TCP transfer went by switch b (to the peer's address there), the RTP flow by switch a
    check_captures_with_tshark(report, tcp_to=PEER_B, rtp_to=PEER)


@contextlib.contextmanager
def demo_process(out: Path) -> Iterator[subprocess.Popen]:
    """`python -m bmv2_topo.demo` as a user starts it from a terminal; killed if a test leaves it running.

    Ctrl-C is given back its default: a suite started in the background by a
    non-interactive shell (`cmd &`) inherits SIGINT ignored, and a Python
    started so never turns it into KeyboardInterrupt."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-u", "-m", "bmv2_topo.demo", "--hosts", "netns", "--out-dir", str(out)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_until(proc: subprocess.Popen, needle: str) -> str:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"the demo ended before {needle!r}:\n{''.join(seen)}")


def pids(text: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"(switch s1|IAP|MD): .*?pid (\d+)", text)}


def assert_nothing_left(started: dict[str, int]) -> None:
    prefix = tagged("p4td")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix}-" not in netns, netns
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not [line for line in links.splitlines() if line.startswith(prefix)], links
    for name, pid in started.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone (and reaped: the demo's children die with their reaper)


@e2e
def test_switch_killed_mid_run_ends_in_a_clear_report(tmp_path):
    with demo_process(tmp_path / "demo") as proc:
        before = read_until(proc, "subject: RTP-like flow")
        started = pids(before)
        assert set(started) == {"switch s1", "IAP", "MD"}, before
        os.kill(started["switch s1"], signal.SIGKILL)
        rest = proc.communicate(timeout=240)[0]  # a hang guard, not a speed goal
    text = before + rest
    assert proc.returncode == 1, text
    assert f"switch s1 (pid {started['switch s1']}) stopped during the run (killed by signal 9 (SIGKILL))" in text
    assert "the run is cut short" in text and "verdict: FAILED: a switch stopped at about" in text
    # the keeper restarts it and the IAP reconciles it before the demo ends (issue 27)
    assert re.search(r"switch s1 running again \(pid \d+\) after [\d.]+ s", text), text
    assert re.search(r"IAP: switch s1 back in service after [\d.]+ s without its stream; reconciled", text), text
    assert "until then every packet of the subject was captured, for every receiver" in text, text
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["ok"] is False and any("stopped during the run" in p for p in report["problems"])
    assert_nothing_left(started)


@e2e
def test_ctrl_c_removes_everything(tmp_path):
    with demo_process(tmp_path / "demo") as proc:
        before = read_until(proc, "driving traffic")
        started = pids(before)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[0]  # a hang guard, not a speed goal
    assert proc.returncode == 130, before + rest
    assert "interrupted; everything the demo created has been removed" in rest
    assert_nothing_left(started)


@needs_root
def test_demo_says_what_is_missing_and_touches_nothing(tmp_path, monkeypatch, capsys):
    from bmv2_topo.demo import main

    # Not root: faked, since this machine's Python lives under /root (mode 0700) and an unprivileged
    # process could not even start the interpreter; the demo's own check is what is under test.
    with monkeypatch.context() as m:
        m.setattr(os, "geteuid", lambda: 1000)
        assert main(["--out-dir", str(tmp_path / "x")]) == 2
    assert "run it as root (sudo make run)" in capsys.readouterr().err
    monkeypatch.setenv("P4TAP_TARGET", "tofino")
    assert main(["--out-dir", str(tmp_path / "y")]) == 2
    assert "unknown switch target 'tofino'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
