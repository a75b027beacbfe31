"""The demo's radius variant (issue 15): the warrant names a person, and
the MD learns where she is from the operator's RADIUS accounting.

The MD keeps a standing signalling tap on the RADIUS server (its own CCCID,
its own MD port); the NAS sends accounting with radclient (freeradius-utils),
a real third-party client, for the target (alice, on the subject's address)
and a non-target (bob, on the other subscriber's). alice's Start carries the
Class attributes a server gives back (3 kB): it crosses the switch in IP
fragments, and the MD makes it whole. On it the MD provisions 4242 on her
address over SNMPv3. Her second device then starts a
session of its own (alice-2, on the subject's second address) and both are
tapped: its pings are judged exactly with the rest; its Stop removes only its
own streams, and what it sends after (TCP, outside the judged filters: any
copy of it would be an extra packet) reaches nobody. The demo then drives the
usual traffic of the first session and judges it as the single variant
does; on its Stop the tap goes, and what the subject sends after it reaches
nobody. bob's messages are parsed and dropped: no tap, no IRI, nothing stored.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo.demo_config import signalling_toml
from bmv2_topo.layouts import AAA, OTHER, PEER, SUBJECT, SUBJECT_B
from mediation.capture import CaptureError, capture_name, read_pcap
from mediation.config import subject_filters
from mediation.iri import IriRecord
from mediation.stream_filter import Filter, ip_fields

SIGNALLING_PORT = 7001
CCCID_SIGNALLING, CCCID_ALICE, CCCID_CAROL = 90001, 4242, 4243
SECRET = "demo-secret"
# what the report judges: alice's derived tap, for lea-a (all of her first session's address, and the pings of her
# second device, sent while both sessions are on); lea-b holds a warrant on carol, who never logs in
SECOND_PINGS = 3
INTERCEPTS: dict[int, tuple[Filter, ...]] = {CCCID_ALICE: subject_filters(SUBJECT) + (
    Filter(src=f"{SUBJECT_B}/32", protocol=1), Filter(dst=f"{SUBJECT_B}/32", protocol=1))}
AGENCIES = {"lea-a": frozenset({CCCID_ALICE}), "lea-b": frozenset({CCCID_CAROL})}
START_CLASSES = 12  # alice-1's Start carries them: 3 kB, more than the NAS's MTU, so it goes in IP fragments
SIGNALLING_STREAMS = 2  # the server's UDP to it and from it, any port (a fragment after the first has none)
WAIT = 60.0  # seconds, a hang guard
WHAT_THE_MD_DOES = (f"it provisions a standing signalling tap {CCCID_SIGNALLING} on the RADIUS server over SNMPv3 "
                    f"(copies to its port {SIGNALLING_PORT}); warrants: alice ({CCCID_ALICE}, lea-a), carol "
                    f"({CCCID_CAROL}, lea-b)")


class SignallingError(RuntimeError):
    """The MD did not act on the signalling in time: the message says what it did not do."""


def md_toml(lifetime: float) -> str:
    return signalling_toml(SIGNALLING_PORT, lifetime, (("radius_server", AAA, CCCID_SIGNALLING),),
                           ((CCCID_ALICE, "radius_username", "alice"),
                            (CCCID_CAROL, "calling_station_id", "02-00-00-00-0c-01")))


@dataclass
class SignallingReport:
    tap_live_ms: float | None = None  # the Start's copy at the MD -> the data tap's SETs done
    reassembled: int = 0  # RADIUS messages the MD made whole from IP fragments by then (alice-1's Start)
    second_captured: int = 0  # lea-a's copies of the second session's pings (both sessions on)
    second_after_stop_sent: int = 0  # connection attempts from the second address after its own Stop
    second_after_stop_captured: int = 0  # copies of them anywhere (the first session still tapped)
    iri: dict[str, list[str]] = field(default_factory=dict)  # agency -> kinds of the records it got
    discarded_non_target: int = 0
    after_stop_sent: int = 0
    after_stop_captured: int = 0
    problems: list[str] = field(default_factory=list)


PROBE = """
import socket, sys
for _ in range(int(sys.argv[3])):   # a TCP connection attempt to a closed port: SYN, and the peer's RST
    s = socket.socket(); s.settimeout(5); s.bind((sys.argv[1], 0))
    try:
        s.connect((sys.argv[2], 9))
    except OSError:
        pass
    s.close()
"""


def radclient(hosts: dict, status: str, user: str, address: str, session: str, classes: int = 0) -> None:
    """The NAS sends one accounting request (radclient does not wait long: nobody answers it), with
    `classes` Class attributes of 251 octets each (what an Access-Accept gave it to echo back)."""
    text = (f"User-Name = {user}\nAcct-Status-Type = {status}\nFramed-IP-Address = {address}\n"
            f"Acct-Session-Id = {session}\n") + "".join(f"Class = 0x{n:02x}{'ab' * 250}\n" for n in range(classes))
    hosts["nas"].run("radclient", "-r", "1", "-t", "1", f"{AAA}:1813", "acct", SECRET, input=text, check=False)


def md_status(status_file: Path) -> dict:
    try:
        return json.loads(status_file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def until(status_file: Path, condition, what: str, limit: float = WAIT) -> dict:
    """The MD's status once `condition` holds, polled; `limit` is a hang guard, said as what the MD did not do."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = md_status(status_file)
        if status and condition(status):
            return status
        time.sleep(0.05)
    raise SignallingError(f"the MD did not {what} within {limit:.0f}s; see md.log; last status {md_status(status_file)}")


def _derived(status: dict) -> dict:
    return status.get("keeper", {}).get("intercepts", {}).get(str(CCCID_ALICE), {})


def _radius(status: dict) -> dict:
    return status.get("iri", {}).get("protocols", {}).get("radius", {})


def _holds(status: dict, *sessions: str) -> bool:
    """alice's tap is made exactly for these sessions: the keeper's change done, the IAP said Active for all."""
    derived = _derived(status)
    return (derived.get("state") == "active"
            and derived.get("derived_from", "").count("RADIUS session ") == len(sessions)
            and all(f"RADIUS session {s} at" in derived["derived_from"] for s in sessions)
            and sum(n["kind"] == "active" and n["content_id"] == CCCID_ALICE
                    for n in status.get("notifications", [])) >= 2 * len(sessions))


def session_start(hosts: dict, status_file: Path, progress) -> SignallingReport:
    """bob's and alice's Accounting-Start, until alice's data tap is live; then her second device's session
    beside it, its pings (copied), its Stop (only its streams go), and what it sends after (copied to no one)."""
    out = SignallingReport()
    progress(f"NAS: radclient Accounting-Start for bob ({OTHER}, no warrant) and alice ({SUBJECT}, warrant "
             f"{CCCID_ALICE}, a 3 kB Start: IP fragments) to the RADIUS server {AAA}")
    radclient(hosts, "Start", "bob", OTHER, "bob-1")
    # a Start of 3 kB (twelve Class attributes): three IP fragments on the NAS's 1500-byte link, through the switch
    radclient(hosts, "Start", "alice", SUBJECT, "alice-1", classes=START_CLASSES)
    status = until(status_file, lambda s: _holds(s, "alice-1"), "provision alice's tap")
    out.reassembled = _radius(status).get("reassembled", 0)
    start = next(t for t in _radius(status).get("targets", []) if t["cccid"] == CCCID_ALICE)["sessions"][0]["since"]
    out.tap_live_ms = (_derived(status)["provisioned_at"] - start) * 1000
    progress(f"MD: alice's session started: {CCCID_ALICE} provisioned on {SUBJECT} over SNMPv3, "
             f"{out.tap_live_ms:.0f} ms after her Accounting-Start reached it", mark="   ")

    progress(f"NAS: radclient Accounting-Start for alice's second device ({SUBJECT_B}, session alice-2) while "
             "alice-1 goes on")
    radclient(hosts, "Start", "alice", SUBJECT_B, "alice-2")
    until(status_file, lambda s: _holds(s, "alice-1", "alice-2"), "tap alice's second session beside the first")
    hosts["subject"].run("ping", "-c", str(SECOND_PINGS), "-i", "0.05", "-W", "1", "-I", SUBJECT_B, PEER, check=False)
    radclient(hosts, "Stop", "alice", SUBJECT_B, "alice-2")
    until(status_file, lambda s: _holds(s, "alice-1"), "remove only alice's second session's streams")
    out.second_after_stop_sent = 3
    hosts["subject"].run(sys.executable, "-c", PROBE, SUBJECT_B, PEER, str(out.second_after_stop_sent), check=False)
    progress(f"MD: alice-2 tapped beside alice-1 ({SECOND_PINGS} pings from {SUBJECT_B}); at its Stop only its "
             f"streams went; {out.second_after_stop_sent} TCP attempts from {SUBJECT_B} after it", mark="   ")
    return out


def session_stop(hosts: dict, status_file: Path, out: SignallingReport, progress) -> None:
    """Stop for both; alice's tap goes; what the subject sends after it is copied to nobody."""
    progress("NAS: radclient Accounting-Stop for alice and bob")
    radclient(hosts, "Stop", "alice", SUBJECT, "alice-1")
    radclient(hosts, "Stop", "bob", OTHER, "bob-1")
    status = until(status_file, lambda s: "keeper" in s and str(CCCID_ALICE) not in s["keeper"]["intercepts"]
                    and _radius(s).get("messages", 0) >= 6, "remove alice's tap")
    before = _captured(status)
    out.after_stop_sent = 5
    hosts["subject"].run("ping", "-c", str(out.after_stop_sent), "-i", "0.05", "-W", "1", PEER, check=False)
    # a marker through the same switch and MD link: once the IRI function has it, the pings' copies (if any) are in
    radclient(hosts, "Interim-Update", "bob", OTHER, "bob-1")
    status = until(status_file, lambda s: _radius(s).get("messages", 0) >= 7, "see the marker")
    out.after_stop_captured = _captured(status) - before
    out.discarded_non_target = _radius(status).get("discarded_non_target", 0)
    progress(f"MD: alice's tap removed at Stop; {out.after_stop_sent} pings after it, "
             f"{out.after_stop_captured} copied; {out.discarded_non_target} messages of bob parsed and dropped",
             mark="   ")


def _captured(status: dict) -> int:
    return sum(i["packets"] for i in status.get("content", {}).get("intercepts", []) if i["cccid"] == CCCID_ALICE)


def judge(out: SignallingReport, run_dir: Path) -> None:
    """IRI to lea-a only; both of alice's sessions tapped while they lasted, each apart; nothing of bob or of
    the signalling kept anywhere."""
    for name in AGENCIES:
        records = [IriRecord.from_json(line) for f in sorted((run_dir / name).glob("iri-*.jsonl"))
                   for line in f.read_bytes().splitlines()]
        out.iri[name] = [f"{r.kind} {r.session}" for r in records]
    if out.iri.get("lea-a") != IRI_EXPECTED:
        out.problems.append(f"lea-a got IRI {out.iri.get('lea-a')}, not alice's two sessions' starts and stops")
    second = _second_address_copies(run_dir)
    out.second_captured = second.get(("lea-a", True), 0)
    out.second_after_stop_captured = sum(n for (_, icmp), n in second.items() if not icmp)
    if not out.second_captured:
        out.problems.append(f"lea-a got nothing of alice's second session ({SUBJECT_B}) while it was on")
    if out.second_after_stop_captured:
        out.problems.append(f"{out.second_after_stop_captured} packets of {SUBJECT_B} were copied after its Stop")
    if out.reassembled != 1:
        out.problems.append(f"the MD made {out.reassembled} RADIUS messages whole from IP fragments by alice's tap, "
                            "not 1 (her 3 kB Start)")
    if out.iri.get("lea-b"):
        out.problems.append(f"lea-b got IRI of another warrant: {out.iri['lea-b']}")
    if out.after_stop_captured:
        out.problems.append(f"{out.after_stop_captured} packets of the subject were copied after Stop")
    if out.discarded_non_target != 3:
        out.problems.append(f"{out.discarded_non_target} of bob's 3 messages were dropped, not 3")
    for f in run_dir.rglob("*"):
        if f.is_file() and f.suffix in (".pcap", ".jsonl") and (b"bob" in f.read_bytes()):
            out.problems.append(f"{f} holds something of bob")
    if list(run_dir.rglob(f"cccid-{CCCID_SIGNALLING}.pcap")):
        out.problems.append("signalling copies were stored")


IRI_EXPECTED = ["session-start alice-1", "session-start alice-2", "session-stop alice-2", "session-stop alice-1"]


def _second_address_copies(run_dir: Path) -> dict[tuple[str, bool], int]:
    """(receiver, ICMP or not) -> the copies of CCCID_ALICE from or to the second session's address."""
    counts: dict[tuple[str, bool], int] = {}
    for who in ("md", "lea-a"):
        path = run_dir / who / capture_name(CCCID_ALICE)
        try:
            packets = read_pcap(path) if path.exists() else []
        except CaptureError:
            continue
        for _, packet in packets:
            fields = ip_fields(packet)
            if fields and SUBJECT_B in (str(fields[1]), str(fields[2])):
                key = (who, fields[3] == 1)
                counts[key] = counts.get(key, 0) + 1
    return counts


def render(out: SignallingReport) -> list[str]:
    lines = [f"  signalling: alice's tap live {out.tap_live_ms:.0f} ms after her Accounting-Start reached the MD "
             f"(3 kB in IP fragments; {out.reassembled} message made whole)"
             if out.tap_live_ms is not None else "  signalling: alice's tap never went live"]
    lines += [f"    IRI to {name}: {', '.join(kinds) or 'nothing'}" for name, kinds in out.iri.items()]
    lines.append(f"    alice's second session ({SUBJECT_B}): {out.second_captured} copies at lea-a while on; after its "
                 f"Stop {out.second_after_stop_sent} TCP attempts, {out.second_after_stop_captured} packets copied")
    lines.append(f"    after Stop: {out.after_stop_sent} packets of the subject, {out.after_stop_captured} copied; "
                 f"bob: {out.discarded_non_target} messages parsed and dropped, nothing kept")
    return lines


def start(hosts: dict, status_file: Path, progress, out_dir: Path) -> SignallingReport:
    """The demo's hook (bmv2_topo/demo.py), as voip_scenario's."""
    return session_start(hosts, status_file, progress)


stop = session_stop
