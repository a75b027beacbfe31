"""Notifications to the mediation devices: SNMPv3 informs (or traps, where a
[[notify]] entry says so) of

- ciscoTap2MIBActive when a stream first becomes able to intercept (with its
  cTap2StreamType, as the MIB's DESCRIPTION asks);
- ciscoTap2MediationTimedOut when an intercept is removed without its MD
  asking (its Timeout came, or it was removed on the controller), carrying
  cTap2MediationStatus.<ContentId> = destroy(6): the row is gone;
- ciscoTap2MediationDebug / ciscoTap2StreamDebug on faults, carrying the
  cTap2DebugTable row;
- ciscoTap2Switchover once at start when the controller could not keep its
  intent across the restart (its store was lost): the MIB tells the MD to
  "assume that configured intercepts ... no longer exist" and configure them
  again. It has no objects, and is not per mediation, so it is always sent.

Callers honour cTap2MediationNotificationEnable; pysnmp's VACM drops a
notification whose objects are outside the target user's notify view.
Runs on the agent's event loop only.
"""

from __future__ import annotations

import logging
from typing import Any

from pysnmp.entity import config as snmp_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import ntforg
from pysnmp.proto import rfc1902

from controller.model import StreamKey
from mib_bridge import oids
from mib_bridge.config import AgentConfig
from mib_bridge.debug_table import DebugTable
from mib_bridge.oids import OID, DebugColumn, MediationColumn, StreamColumn
from mib_bridge.rowstatus import RowStatus

log = logging.getLogger("p4tap.snmp")

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
NOTIFY_NAMES = {"inform": "p4tap-inform", "trap": "p4tap-trap"}


class Notifier:
    def __init__(self, engine: SnmpEngine, cfg: AgentConfig, domains: dict[int, tuple[int, ...]]) -> None:
        """`domains`: the transport domain to send from, per IP version."""
        self.engine = engine
        self.originator = ntforg.NotificationOriginator()
        self.names: list[str] = []
        self.sent = 0
        self.failed = 0
        types = set()
        for i, n in enumerate(cfg.notify):
            user = next(u for u in cfg.users if u.name == n.user)
            params = f"p4tap-params-{i}"
            snmp_config.add_target_parameters(engine, params, user.name,
                                              "authPriv" if user.priv_protocol else "authNoPriv", mpModel=3)
            address = (n.target.host, n.target.port)
            snmp_config.add_target_address(engine, f"p4tap-target-{i}", domains[n.target.family], address, params,
                                           timeout=int(n.timeout * 100), retryCount=n.retries,
                                           tagList=NOTIFY_NAMES[n.type])
            types.add(n.type)
        for kind in sorted(types):
            snmp_config.add_notification_target(engine, NOTIFY_NAMES[kind], f"p4tap-params-{kind}", NOTIFY_NAMES[kind],
                                                kind)
            self.names.append(NOTIFY_NAMES[kind])

    def send(self, trap: OID, varbinds: list[tuple[OID, Any]]) -> None:
        if not self.names:
            return
        pdu_varbinds = [(SNMP_TRAP_OID, rfc1902.ObjectIdentifier(trap))] + list(varbinds)
        for name in self.names:
            try:
                self.originator.send_varbinds(self.engine, name, None, b"", pdu_varbinds, self._done, oids.text(trap))
            except Exception:  # a notification must never take the agent down
                self.failed += 1
                log.exception("could not send %s", oids.text(trap))

    def _done(self, engine, handle, error_indication, error_status, error_index, varbinds, trap) -> None:
        if error_indication:
            self.failed += 1
            log.warning("notification %s not acknowledged: %s", trap, error_indication)
        else:
            self.sent += 1

    # -- the TAP-MIB's notifications ----------------------------------------------

    def active(self, key: StreamKey) -> None:
        self.send(oids.NOTIFY_MIB_ACTIVE, [
            (oids.STREAM_ENTRY + (StreamColumn.TYPE, key.content_id, key.index), rfc1902.Integer32(oids.STREAM_TYPE_IP)),
        ])

    def timed_out(self, content_id: int) -> None:
        self.send(oids.NOTIFY_MEDIATION_TIMED_OUT, [
            (oids.MEDIATION_ENTRY + (MediationColumn.STATUS, content_id), rfc1902.Integer32(RowStatus.DESTROY)),
        ])

    def switchover(self) -> None:
        self.send(oids.NOTIFY_SWITCHOVER, [])

    def debug(self, debug: DebugTable, index: tuple[int]) -> None:
        """ciscoTap2StreamDebug if the row names a stream, else ciscoTap2MediationDebug."""
        row = debug.rows.get(index)
        if row is None:
            return
        columns = [DebugColumn.MEDIATION_ID, DebugColumn.MESSAGE]
        trap = oids.NOTIFY_MEDIATION_DEBUG
        if row.values[DebugColumn.STREAM_ID]:
            columns.insert(1, DebugColumn.STREAM_ID)
            trap = oids.NOTIFY_STREAM_DEBUG
        self.send(trap, [(debug.instance(c, index), debug.cell(index, row, c)) for c in columns])
