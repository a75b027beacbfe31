"""`p4tap md listen`: the whole mediation device in one process.

- the content receiver (interface f) on every [content] listen address, with
  the handover to the [[agency]] entries (HI3);
- the inform receiver on [informs] listen, if configured;
- the keeper (mediation/keeper.py) for the [[intercept]] entries, if any:
  provisions them over SNMPv3, refreshes their Timeout, audits the IAP and
  provisions again what it lost;
- with [signalling]: the standing signalling taps (one per [[radius_server]]
  and [[sip_server]], kept by the same keeper) and the IRI function (mediation/iri_function.py)
  on the signalling port, whose protocol handlers turn a target's signalling
  into IRI records for the warrant's agencies (HI2) and into data taps the
  keeper provisions at once (mediation/derived_taps.py), each change written
  first to <out_dir>/derived-taps.json so that a restarted MD keeps them and
  can end them (mediation/derived_state.py).

About once a second it writes its state to the status file (JSON, mode 0600:
it names intercepts), which `p4tap md status` shows; the last write happens
on exit, after the capture files are closed.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from controller.private_files import replace_private_json
from mediation.config import AgencySpec, MdConfig
from mediation.derived_state import FILE_NAME as DERIVED_STATE_FILE
from mediation.derived_state import DerivedState
from mediation.etsi_delivery import EtsiDelivery
from mediation.handover import Agency, Delivery, FileDelivery, Handover, TcpDelivery, UdpDelivery
from mediation.informs import InformReceiver, Notification
from mediation.iri_function import IriFunction, SignallingHandler
from mediation.keeper import Keeper
from mediation.receiver import ContentReceiver

log = logging.getLogger("p4tap.md")


def delivery_for(agency: AgencySpec) -> Delivery:
    if agency.etsi is not None:
        return EtsiDelivery(agency.etsi)
    if agency.file is not None:
        return FileDelivery(agency.file)
    if agency.udp is not None:
        return UdpDelivery(agency.udp.host, agency.udp.port)
    return TcpDelivery(agency.tcp.host, agency.tcp.port)


def write_private_json(path: Path, data: dict) -> None:
    """Replace `path` atomically with `data`, owner-only (it names intercepts)."""
    replace_private_json(path, data, "status file ", indent=2, default=str)


class MdDaemon:
    def __init__(self, config: MdConfig, remove_on_exit: bool = False) -> None:
        if not config.listen:
            raise ValueError("[content] listen: give at least one ADDRESS:PORT to receive content on")
        self.config = config
        self.remove_on_exit = remove_on_exit
        handover = Handover([Agency(a.name, a.cccids, delivery_for(a)) for a in config.agencies]) \
            if config.agencies else None
        self.receiver = ContentReceiver([(e.host, e.port) for e in config.listen], config.out_dir, handover,
                                        config.queue)
        standing = config.signalling_intercepts()
        wanted = tuple(config.intercepts) + standing
        self.keeper = Keeper(config.iap, wanted) if config.iap and (wanted or config.identity_targets) else None
        self.derived = None  # mediation/derived_taps.py, made with the IRI function
        self.sip = None  # mediation/sip_handler.py: its calls time out on the MD's tick
        self.iri = self._iri_function(config) if config.signalling is not None and self.keeper is not None else None
        self.informs = InformReceiver(config.informs, config.iap, self._on_notification) \
            if config.informs and config.iap else None
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()

    def _iri_function(self, config: MdConfig) -> IriFunction:
        """The IRI function with a handler per standing signalling tap's CCCID."""
        from mediation.derived_taps import DerivedTaps
        from mediation.radius_handler import RadiusHandler
        from mediation.sip_handler import MEMORY as SIP_MEMORY
        from mediation.sip_handler import SipHandler

        content_to = config.signalling.content_to or config.listen[0]  # where derived taps send their copies
        self.derived = DerivedTaps(self.keeper.want, self.keeper.unwant, content_to)
        # what the MD before this one derived (mediation/derived_state.py): kept by the keeper from its first
        # audit; any of the warrants' intercepts at the IAP that nobody wants then goes
        warrants = {t.cccid: t for t in config.identity_targets}
        self.derived_state = DerivedState(config.out_dir / DERIVED_STATE_FILE)
        self.keeper.keep_from_start(self.derived_state.restore(self.derived, warrants))
        self.keeper.claim(set(warrants) | self.derived_state.dropped)
        restored = {cccid: dict(tap.parts) for cccid, tap in self.derived.taps.items()}
        self.derived.on_change = self.derived_state.write
        handlers: dict[int, SignallingHandler] = {}
        if config.radius_servers:
            radius = RadiusHandler([t for t in config.identity_targets if t.by_radius], self.derived,
                                   self.receiver.submit_iri)
            radius.restore(restored)
            handlers.update((s.content_id, radius) for s in config.radius_servers)
        if config.sip_servers:
            self.sip = SipHandler(config.identity_targets, self.derived, self.receiver.submit_iri)
            self.sip.restore(self.derived.memory.get(SIP_MEMORY))
            handlers.update((s.content_id, self.sip) for s in config.sip_servers)
        try:
            return IriFunction([(config.signalling.listen.host, config.signalling.listen.port)], handlers)
        except OSError:
            self.receiver.close()
            raise

    def _on_notification(self, note: Notification) -> None:
        with self._lock:
            self.notifications.append(note)
            del self.notifications[:-100]
        if self.keeper is not None:
            self.keeper.on_notification(note)

    def status(self) -> dict:
        out = {"pid": os.getpid(), "content": self.receiver.summary()}
        if self.keeper is not None:
            out["keeper"] = self.keeper.summary()
        if self.iri is not None:
            out["iri"] = self.iri.summary()
            out["iri"]["derived_taps"] = self.derived.summary()
        if self.informs is not None:
            with self._lock:
                out["notifications"] = [vars(n) for n in self.notifications]
            out["notifications_refused"] = self.informs.refused
        return out

    def _tick(self) -> None:
        """About once a second: SIP calls whose BYE never came end, then the status file."""
        if self.sip is not None:
            try:
                self.sip.tick()
            except Exception:  # the tick must go on: the status, the next timeouts
                log.exception("IRI: the SIP handler's tick failed")
        self.write_status()

    def write_status(self, final: bool = False) -> None:
        data = self.status()
        data["running"] = not final
        try:
            write_private_json(self.config.status_file, data)
        except OSError as error:
            log.warning("cannot write the status file %s: %s", self.config.status_file, error)

    def run(self, duration: float | None = None) -> dict:
        """Serve until stop() or `duration` seconds; returns the final status."""
        if self.informs is not None:
            try:
                self.informs.start()
            except (OSError, RuntimeError):
                self.receiver.close()
                if self.iri is not None:
                    self.iri.close()
                raise
        if self.keeper is not None:
            self.keeper.start(remove_on_exit=self.remove_on_exit)
        if self.iri is not None:
            self.iri.start()
        log.info("content on %s; captures in %s", ", ".join(map(str, self.config.listen)), self.config.out_dir)
        try:
            self.receiver.run(duration, on_tick=self._tick)
        finally:
            if self.iri is not None:
                self.iri.stop()
            if self.keeper is not None:
                self.keeper.stop()
            if self.informs is not None:
                self.informs.stop()
            self.write_status(final=True)
        return self.status()

    def stop(self) -> None:
        self.receiver.stop()
