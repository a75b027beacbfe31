"""What an end-to-end run proves, from what was on the wires and what the
MD wrote: the demo prints it, the end-to-end tests assert on it.

The ground truth is every frame on the switch side of the subject's, the
peer's and the other subscriber's links (bmv2_topo/wire.Recorder): frames
entering the switch there were sent by the host, frames leaving it were
delivered to the host. From it:

- completeness and minimality: per intercept, the subject's IP packets its
  filters select, against the MD's capture file and each authorised
  agency's, compared as multisets of exact bytes (each packet once, nothing
  else);
- nothing of the other subscriber in any capture, and no agency holding a
  CCCID it is not authorised for;
- undetectability: every frame the subject sent to the peer arrived at the
  peer byte for byte, and the other way round;
- in the multi-homed network, copies arrived from each switch the subject's
  traffic crossed.
"""

from __future__ import annotations

import collections
import ipaddress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from mediation.capture import CaptureError, capture_name, read_pcap
from mediation.stream_filter import Filter, ip_fields

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def ip_packet(frame: bytes) -> bytes | None:
    """The IP packet in an untagged Ethernet frame (without any padding), or None."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    body = frame[14:]
    if ethertype == ETH_IPV4 and len(body) >= 20:
        return body[: int.from_bytes(body[2:4], "big")]
    if ethertype == ETH_IPV6 and len(body) >= 40:
        return body[: 40 + int.from_bytes(body[4:6], "big")]
    return None


@dataclass
class Tally:
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None

    @classmethod
    def of(cls, stamped: list[tuple[float, bytes]]) -> Tally:
        stamps = [t for t, _ in stamped]
        return cls(len(stamped), sum(len(p) for _, p in stamped), min(stamps, default=None), max(stamps, default=None))


@dataclass
class Delivery:
    """One capture against its reference: the MD's own, or an agency's."""

    who: str
    cccid: int
    expected: Tally
    got: Tally
    missing: int
    extra: int
    file: str
    before_cut: tuple[int, int] | None = None  # (expected, missing) before a switch stopped, if one did

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.extra == 0


@dataclass
class PathCount:
    switch: str
    tap_source: str
    cccid: int
    expected: int
    got: int


@dataclass
class Report:
    variant: str
    backend: str
    target: str
    deliveries: list[Delivery] = field(default_factory=list)
    paths: list[PathCount] = field(default_factory=list)
    other_packets: int = 0
    other_captured: int = 0
    forwarded_checked: int = 0
    forwarded_altered_or_lost: int = 0
    agency_violations: list[str] = field(default_factory=list)
    unexpected_cccids: list[int] = field(default_factory=list)
    kernel_drops: int = 0
    md_not_written: int = 0
    md_malformed: int = 0
    tcp_bytes_at_peer: int | None = None
    tcp_bytes_sent: int = 0
    problems: list[str] = field(default_factory=list)
    cut_at: float | None = None  # a switch stopped during the run: what came before this time is judged apart
    signalling: dict | None = None  # radius, voip variants: bmv2_topo/{radius,voip}_scenario.SignallingReport

    @property
    def ok(self) -> bool:
        return (not self.problems and all(d.exact for d in self.deliveries) and self.deliveries
                and all(d.expected.packets for d in self.deliveries)
                and self.other_captured == 0 and not self.agency_violations and not self.unexpected_cccids
                and self.forwarded_altered_or_lost == 0 and self.forwarded_checked > 0
                and all(p.got == p.expected for p in self.paths) and self.every_path_used
                and self.tcp_bytes_at_peer == self.tcp_bytes_sent)

    @property
    def every_path_used(self) -> bool:
        """Multi-homed: the subject's traffic crossed every switch (else nothing was shown on that path)."""
        switches = {p.switch for p in self.paths}
        return all(sum(p.expected for p in self.paths if p.switch == s) > 0 for s in switches)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = bool(self.ok)
        out["every_path_used"] = self.every_path_used
        return out


@dataclass(frozen=True)
class Truth:
    """The recorded frames, sorted out by host and direction."""

    sent: dict[str, list[tuple[float, bytes]]]  # host -> frames it sent (entering the switch)
    received: dict[str, list[tuple[float, bytes]]]  # host -> frames delivered to it
    by_end: dict[str, list[tuple[float, bytes]]]  # switch-side interface -> frames either way


def sort_out(frames: list[tuple[float, str, bool, bytes]], owner: dict[str, str]) -> Truth:
    """`owner` maps each recorded switch-side interface to its host."""
    sent: dict[str, list] = collections.defaultdict(list)
    received: dict[str, list] = collections.defaultdict(list)
    by_end: dict[str, list] = collections.defaultdict(list)
    for stamp, end, outgoing, frame in frames:
        (received if outgoing else sent)[owner[end]].append((stamp, frame))
        by_end[end].append((stamp, frame))
    return Truth(dict(sent), dict(received), dict(by_end))


def _selected(stamped_frames, filters: tuple[Filter, ...]) -> list[tuple[float, bytes]]:
    out = []
    for stamp, frame in stamped_frames:
        packet = ip_packet(frame)
        if packet is not None and any(f.matches(packet) for f in filters):
            out.append((stamp, packet))
    return out


def expected_counts(truth: Truth, intercepts: dict[int, tuple[Filter, ...]]) -> dict[int, int]:
    """Per intercept, how many of the subject's packets it selects (what the MD should have counted)."""
    frames = truth.sent.get("subject", []) + truth.received.get("subject", [])
    return {cccid: len(_selected(frames, filters)) for cccid, filters in intercepts.items()}


def _compare(who: str, cccid: int, expected: list[tuple[float, bytes]], path: Path,
             cut_at: float | None = None) -> Delivery:
    try:
        got = read_pcap(path) if path.exists() else []
    except CaptureError:
        got = []
    want, have = collections.Counter(p for _, p in expected), collections.Counter(p for _, p in got)
    delivery = Delivery(who, cccid, Tally.of(expected), Tally.of(got), sum((want - have).values()),
                        sum((have - want).values()), str(path))
    if cut_at is not None:
        early = collections.Counter(p for t, p in expected if t < cut_at)
        delivery.before_cut = (sum(early.values()), sum((early - have).values()))
    return delivery


def _endpoints(frame: bytes):
    packet = ip_packet(frame)
    fields = ip_fields(packet) if packet else None
    return (fields[1], fields[2]) if fields else (None, None)


def analyse(report: Report, truth: Truth, intercepts: dict[int, tuple[Filter, ...]], md_dir: Path,
            agencies: dict[str, tuple[frozenset[int], Path]], subjects: tuple[str, ...], peers: tuple[str, ...],
            other: str, switch_ends: dict[str, tuple[str, str]], md_status: dict | None) -> Report:
    """Fill `report` in. `subjects`: the subject's addresses (the radius variant's second device has one of its
    own); `switch_ends`: the subject's switch-side interfaces -> (switch, tap source)."""
    subject_frames = truth.sent.get("subject", []) + truth.received.get("subject", [])
    captured_ips: set[bytes] = set()
    for cccid, filters in sorted(intercepts.items()):
        expected = sorted(_selected(subject_frames, filters))
        report.deliveries.append(_compare("md", cccid, expected, md_dir / capture_name(cccid), report.cut_at))
        for name, (cccids, directory) in sorted(agencies.items()):
            if cccid in cccids:
                report.deliveries.append(_compare(name, cccid, expected, directory / capture_name(cccid),
                                                  report.cut_at))
        if len(switch_ends) > 1:
            sources = {}
            if md_status:
                sources = next((i["sources"] for i in md_status["content"]["intercepts"] if i["cccid"] == cccid), {})
            for end, (switch, tap_source) in sorted(switch_ends.items()):
                report.paths.append(PathCount(switch, tap_source, cccid,
                                              len(_selected(truth.by_end.get(end, []), filters)),
                                              sources.get(tap_source, 0)))
    for path in list(md_dir.glob("cccid-*.pcap")) + [p for _, d in agencies.values() for p in d.glob("cccid-*.pcap")]:
        try:
            captured_ips.update(p for _, p in read_pcap(path))
        except CaptureError:
            report.problems.append(f"{path} is not a capture file")
    for name, (cccids, directory) in sorted(agencies.items()):
        for path in sorted(directory.glob("cccid-*.pcap")):
            cccid = int(path.stem.split("-")[1])
            if cccid not in cccids:
                report.agency_violations.append(f"agency {name} holds CCCID {cccid}, not authorised for it")
    report.unexpected_cccids = sorted(int(p.stem.split("-")[1]) for p in md_dir.glob("cccid-*.pcap")
                                      if int(p.stem.split("-")[1]) not in intercepts)

    other_ips = {ip_packet(f) for _, f in truth.sent.get("other", []) + truth.received.get("other", [])} - {None}
    report.other_packets = len(other_ips)
    report.other_captured = len(other_ips & captured_ips)

    # undetectability: what one side sent to the other arrived unchanged, both ways
    subject_ips = {ipaddress.ip_address(s) for s in subjects}
    peer_ips = {ipaddress.ip_address(p) for p in peers}
    to_peer = collections.Counter(f for _, f in truth.sent.get("subject", []) if _endpoints(f)[1] in peer_ips)
    at_peer = collections.Counter(f for _, f in truth.received.get("peer", []) if _endpoints(f)[0] in subject_ips)
    to_subject = collections.Counter(f for _, f in truth.sent.get("peer", []) if _endpoints(f)[1] in subject_ips)
    at_subject = collections.Counter(f for _, f in truth.received.get("subject", [])
                                     if _endpoints(f)[0] in peer_ips)
    report.forwarded_checked = sum(to_peer.values()) + sum(to_subject.values())
    report.forwarded_altered_or_lost = sum((to_peer - at_peer).values()) + sum((to_subject - at_subject).values()) \
        + sum((at_peer - to_peer).values()) + sum((at_subject - to_subject).values())

    if md_status:
        report.md_not_written = md_status["content"]["not_written"]
        report.md_malformed = md_status["content"]["malformed"]
        if report.md_not_written:
            report.problems.append(f"the MD could not write {report.md_not_written} received packets in time")
    else:
        report.problems.append("the MD left no status: it did not run to the end")
    if report.kernel_drops:
        report.problems.append(f"the reference capture lost {report.kernel_drops} frames (kernel drops): "
                               "the comparison below is not complete")
    return report


def _time(stamp: float | None) -> str:
    return f"{datetime.fromtimestamp(stamp):%H:%M:%S.%f}"[:-3] if stamp else "-"


def render(report: Report) -> str:
    lines = ["", f"Report ({report.variant} network, {report.backend} hosts, {report.target} switch)"]
    for problem in report.problems:
        lines.append(f"  !! {problem}")
    for cccid in sorted({d.cccid for d in report.deliveries}):
        rows = [d for d in report.deliveries if d.cccid == cccid]
        want = rows[0].expected
        lines.append(f"  CCCID {cccid}: the subject sent and received {want.packets} packets it selects, "
                     f"{want.bytes} bytes, {_time(want.first)} .. {_time(want.last)}")
        for d in rows:
            result = "exact" if d.exact else f"MISSING {d.missing}, EXTRA {d.extra}"
            who = "the MD" if d.who == "md" else f"agency {d.who}"
            if d.before_cut and not d.exact:
                result += f" (before the switch stopped: {d.before_cut[0] - d.before_cut[1]} of {d.before_cut[0]})"
            lines.append(f"    {who:<14} captured {d.got.packets:>5} packets {d.got.bytes:>8} bytes  "
                         f"{_time(d.got.first)} .. {_time(d.got.last)}  {result}")
    for p in report.paths:
        lines.append(f"  path via switch {p.switch}: CCCID {p.cccid}: {p.expected} packets crossed it, "
                     f"{p.got} copies came from {p.tap_source}")
    lines.append(f"  other subscriber: {report.other_packets} packets on the wire, {report.other_captured} captured")
    for violation in report.agency_violations:
        lines.append(f"  !! {violation}")
    if report.unexpected_cccids:
        lines.append(f"  !! content for CCCIDs nobody provisioned: {report.unexpected_cccids}")
    lines.append(f"  forwarding: {report.forwarded_checked} frames between subject and peer, "
                 f"{report.forwarded_altered_or_lost} altered or lost"
                 + (" (byte-identical: the tap is undetectable)" if report.forwarded_checked
                    and not report.forwarded_altered_or_lost else ""))
    if report.tcp_bytes_at_peer is not None:
        lines.append(f"  TCP transfer: {report.tcp_bytes_at_peer} of {report.tcp_bytes_sent} bytes reached the peer")
    if report.signalling is not None:
        from bmv2_topo import radius_scenario, voip_scenario
        scenario = voip_scenario if report.variant == "voip" else radius_scenario
        lines.extend(scenario.render(scenario.SignallingReport(**report.signalling)))
    files = sorted({d.file for d in report.deliveries if Path(d.file).exists()})
    if files:
        lines.append("  capture files (open in Wireshark, or: tshark -r FILE):")
        lines.extend(f"    {f}" for f in files)
    if report.ok:
        verdict = ("every packet of the subject reached the MD and each of its agencies once, nothing else did, "
                   "and forwarding was untouched")
    elif report.cut_at is not None:
        cut = [d.before_cut for d in report.deliveries if d.before_cut]
        whole = all(missing == 0 for _, missing in cut) and not report.other_captured
        verdict = (f"FAILED: a switch stopped at about {_time(report.cut_at)}; "
                   + ("until then every packet of the subject was captured, for every receiver"
                      if whole else "even before that, packets were missing")
                   + "; after it nothing was forwarded or tapped on its path")
    else:
        verdict = "FAILED (see above)"
    lines.append("  verdict: " + verdict)
    return "\n".join(lines)
