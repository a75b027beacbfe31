"""The MD's IRI function: signalling copies in, IRI and derived taps out.

The standing signalling intercepts (the operator's RADIUS and SIP servers,
mediation/signalling.py) deliver their copies to an MD port of their own,
apart from the content's. Each copy's CCCID names the signalling tap it came
from, and so the protocol handler that reads it (RADIUS, SIP, ...): the
handler decodes it, matches it against the warrants, and for a target's
message emits IRI records and sets or clears taps (mediation/derived_taps.py).

What is not a target's is parsed and discarded here: never written to disk,
never handed over, counted only (minimality holds at the handover).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Sequence
from typing import Protocol

from mediation.pcli import PcliError, decode
from mediation.receiver import _bind, recv_stamped

log = logging.getLogger("p4tap.md")


class SignallingHandler(Protocol):
    """One protocol's reader of signalling copies (mediation/radius_handler.py; SIP beside it)."""

    protocol: str

    def handle(self, stamp: float, packet: bytes) -> None:
        """One copied IP packet of signalling, with its arrival time."""

    def summary(self) -> dict:
        """Targets, their sessions or calls, and counts: for `p4tap md status`."""


class IriFunction:
    def __init__(self, listen: Sequence[tuple[str, int]], handlers: dict[int, SignallingHandler]) -> None:
        """`handlers`: the CCCID of each standing signalling tap -> the handler of its protocol."""
        self.handlers = dict(handlers)
        self.socks = []
        try:
            for host, port in listen:
                self.socks.append(_bind(host, port))
        except OSError:
            self.close()
            raise
        self.received = 0
        self.malformed = 0
        self.unknown = 0  # copies of a CCCID no handler claims: dropped
        self.failed = 0  # a handler raised: the copy is dropped, the function goes on
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def close(self) -> None:
        for sock in self.socks:
            sock.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="md-iri", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self.socks, [], [], 0.2)
            for sock in ready:
                while True:
                    try:
                        payload, sender, stamp = recv_stamped(sock)
                    except (BlockingIOError, OSError):
                        break
                    self.accept(payload, sender[0], stamp)

    def accept(self, payload: bytes, sender: str, stamp: float) -> None:
        """One signalling copy: to the handler its CCCID names."""
        try:
            copy = decode(payload)
        except PcliError:
            self.malformed += 1
            return
        self.received += 1
        handler = self.handlers.get(copy.cccid)
        if handler is None:
            self.unknown += 1
            if self.unknown == 1:
                log.warning("IRI: signalling copy of CCCID %d from %s: no signalling tap has it; dropped",
                            copy.cccid, sender)
            return
        try:
            handler.handle(stamp, copy.ip_packet)
        except Exception:  # one bad message must not stop the interception of the others
            self.failed += 1
            log.exception("IRI: the %s handler failed on a copy", handler.protocol)

    def summary(self) -> dict:
        protocols: dict[str, dict] = {}
        for handler in self.handlers.values():
            protocols.setdefault(handler.protocol, handler.summary())
        return {"listening": [f"{h}:{p}" for h, p in (s.getsockname()[:2] for s in self.socks)] if not
                self._stop.is_set() else [], "received": self.received, "malformed": self.malformed,
                "unknown_cccid": self.unknown, "failed": self.failed, "protocols": protocols}
