"""Where a call's 200 OK -> first media copy goes, for bench.sip_tap_latency.

From what the run leaves behind, all on this machine's one clock: the
kernel's stamps of the frames on the SIP server's wire (its 200 OK) and on
the MD's wire (the switch's copies to the MD: the call's INVITE in the SIP
server's signalling tap, and the call's first media copy), and the IAP's
audit trail (the controller's record before and after each switch write).
Each step is its time after the call's 200 OK left the server; the steps
between them say which part took it: the MD's receive, IRI function, keeper
and first SNMPv3 SETs; the IAP's controller and P4Runtime write; the
switch; the copy's way into the MD's socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from mediation.pcli import PcliError, decode
from mediation.sip_parse import SipError, SipMessage, parse

STEPS = ("the INVITE's signalling copy leaves the switch for the MD",
         "the IAP begins the call's first switch write (after the MD's IRI function, keeper and first SETs)",
         "the IAP begins the switch write that let the first copy through (its stream of the call's media)",
         "the call's first media copy leaves the switch")


def _sip(udp_payload: bytes) -> SipMessage | None:
    try:
        return parse(udp_payload)
    except SipError:
        return None


def call_number(msg: SipMessage) -> int:
    """bench.sip_calls.call_messages' Call-IDs are "<n>-bench@<caller>"."""
    return int(msg.call_id.split("-", 1)[0])


@dataclass
class WireTimes:
    answered: dict[int, float] = field(default_factory=dict)  # call -> its 200 OK leaving the server
    invite_copied: dict[int, float] = field(default_factory=dict)  # call -> its INVITE's copy leaving the switch
    media_copied: dict[int, float] = field(default_factory=dict)  # CCCID -> its first copy leaving the switch


def wire_times(frames: list, server: str, server_wire: str, md_wire: str, signalling_cccid: int) -> WireTimes:
    """From a bmv2_topo.wire.Recorder's frames on the server's and the MD's switch-side ends."""
    out = WireTimes()
    for stamp, wire, outgoing, data in frames:
        packet = Ether(data)
        if UDP not in packet:
            continue
        if wire == server_wire and not outgoing and packet[IP].src == server:
            msg = _sip(bytes(packet[UDP].payload))
            if msg is not None and msg.status == 200 and msg.cseq_method == "INVITE":
                out.answered.setdefault(call_number(msg), stamp)
        elif wire == md_wire and outgoing:
            try:
                copy = decode(bytes(packet[UDP].payload))
            except PcliError:
                continue
            if copy.cccid != signalling_cccid:
                out.media_copied.setdefault(copy.cccid, stamp)
                continue
            inner = IP(copy.ip_packet)
            msg = _sip(bytes(inner[UDP].payload)) if UDP in inner else None
            if msg is not None and msg.method == "INVITE":
                out.invite_copied.setdefault(call_number(msg), stamp)
    return out


def switch_writes(audit: Path) -> dict[int, list[tuple[str, float]]]:
    """CCCID -> its (action, time) records of the IAP's switch writes, in order:
    "provision-intent" as one begins (the SNMP SETs that asked for it are in),
    "provision" once it is done."""
    out: dict[int, list[tuple[str, float]]] = {}
    for line in audit.read_text().splitlines():
        record = json.loads(line)
        cccid = record.get("detail", {}).get("content_id")
        if record.get("action") in ("provision-intent", "provision") and cccid is not None:
            out.setdefault(cccid, []).append((record["action"], datetime.fromisoformat(record["time"]).timestamp()))
    return out


def steps(call: int, cccid: int, wire: WireTimes, writes: dict[int, list[tuple[str, float]]]) -> list[float] | None:
    """The call's STEPS in ms after its 200 OK, or None where one is not on record."""
    ok, copied = wire.answered.get(call), wire.media_copied.get(cccid)
    begun = [t for action, t in writes.get(cccid, []) if action == "provision-intent" and copied and t <= copied]
    if None in (ok, copied, wire.invite_copied.get(call)) or not begun:
        return None
    return [(t - ok) * 1000 for t in (wire.invite_copied[call], begun[0], begun[-1], copied)]
