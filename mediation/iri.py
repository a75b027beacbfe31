"""IRI records (HI2): what the MD's IRI function tells an agency about a
target, beside the content (HI3) of the same warrant.

Why a dataclass of plain fields: the record is what was learnt (a session
started on this address, a call was answered with these media), not how it
is encoded; today it goes out as one JSON object (below), and an ETSI TS
102 232 encoder can take the same record later without touching the
protocol handlers that make it.

Encoding on the agencies' channels (mediation/handover.py):

- `file`: one JSON object a line in `iri-<CCCID>.jsonl` beside the content's
  `cccid-<CCCID>.pcap`;
- `udp` and `tcp`: the 4-octet CCCID, then the record as UTF-8 JSON, framed
  as the content is (a datagram; a 4-octet length on TCP). A receiver tells
  the two apart by the octet after the CCCID: '{' (0x7b) for IRI, while an
  IP packet starts with its version, 4 or 6, in the high nibble.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

IRI_MARK = ord("{")


@dataclass(frozen=True)
class IriRecord:
    """One event of one warrant: the agencies holding `cccid` receive it."""

    cccid: int                     # the warrant's CCCID (its content carries the same)
    stamp: float                   # when the signalling that says it reached the MD (kernel time)
    source: str                    # the protocol it was learnt from: "radius", "sip"
    kind: str                      # "session-start", "session-update", "session-stop", "access-accept";
                                   # "call-begin", "call-answer", "call-update", "call-end", "call-report"
    identity: dict[str, str] = field(default_factory=dict)   # the warrant's identity as the signalling gave it
    addresses: tuple[str, ...] = ()                          # the target's addresses or prefixes now
    session: str | None = None                               # Acct-Session-Id, SIP Call-ID
    parties: dict[str, str] = field(default_factory=dict)    # calls: "from", "to", ...
    media: tuple[dict, ...] = ()                             # calls: {"address", "port", "protocol"} per stream
    peer: str | None = None                                  # who sent the signalling (NAS, proxy)
    peer_to: str | None = None                               # calls: whom the SIP message went to
    reason: str | None = None                                # calls: what said it ("INVITE", "200 INVITE",
                                                             # "BYE", "timeout", ...)
    message: str | None = None                               # calls: the SIP message itself (ETSI TS 102 232-5
                                                             # hands it over as IRI)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> IriRecord:
        raw = json.loads(data)
        raw["addresses"] = tuple(raw.get("addresses", ()))
        raw["media"] = tuple(raw.get("media", ()))
        return cls(**raw)


def is_iri(pcli_body: bytes) -> bool:
    """Whether what follows a `pcli` CCCID is an IRI record (else an IP packet)."""
    return bool(pcli_body) and pcli_body[0] == IRI_MARK
