"""Who may do what: USM users and VACM from the config, the access decision
for every object a request touches, and the audit of every refusal at the
security layer (bad keys, unknown users, SNMPv1/v2c).

The decision is pysnmp's VACM (`is_access_allowed`, RFC 3415), with three
things it leaves out made explicit here:
- the request's security level must be at least the group's (pysnmp's
  fuzzy access-entry lookup ignores it);
- a group without a view of a kind (read, write, notify) has no access of
  that kind (pysnmp treats an unknown view as allowed);
- the TAP-MIB subtrees (.399, .394) are reachable only through SNMPv3 by a
  group marked lawful_intercept, whatever the views say.
Nothing here logs a key; pysnmp's own debug logging stays off.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass

from pyasn1.codec.ber import decoder
from pysnmp.entity import config as snmp_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.proto import errind, error
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from mib_bridge import oids
from mib_bridge.config import AgentConfig
from mib_bridge.oids import OID
from snmpv3.protocols import AUTH, PRIV

log = logging.getLogger("p4tap.snmp")

USM = 3  # securityModel
LEVEL_NAMES = {1: "noAuthNoPriv", 2: "authNoPriv", 3: "authPriv"}
VACM = 3  # access control model id in pysnmp
_DISCOVERY = (errind.UnknownEngineID, errind.NotInTimeWindow)  # normal USM discovery, not an attack
MAX_DECISIONS = 4096
_UNDECIDED = object()
_PRINTABLE = set(string.ascii_letters + string.digits + "-_.@:+")


@dataclass(frozen=True)
class Requester:
    """Who sent a request, as USM authenticated it."""

    security_model: int
    name: str
    level: int
    context: bytes
    address: str

    @property
    def actor(self) -> str:
        return f"snmp:{self.name} from {self.address}"


def address_text(transport_address) -> str:
    try:
        host, port = transport_address[0], transport_address[1]
    except (TypeError, IndexError):
        return "?"
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def safe_name(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return "".join(c if c in _PRINTABLE else "?" for c in text[:64]) or "-"


def configure(engine: SnmpEngine, cfg: AgentConfig) -> None:
    """USM users and VACM groups, access entries and views, from the config."""
    for user in cfg.users:
        snmp_config.add_v3_user(
            engine, user.name, AUTH[user.auth_protocol], user.auth_key,
            PRIV[user.priv_protocol] if user.priv_protocol else snmp_config.USM_PRIV_NONE, user.priv_key)
        snmp_config.add_vacm_group(engine, user.group, USM, user.name)
    snmp_config.add_context(engine, "")
    for group in cfg.groups:
        snmp_config.add_vacm_access(engine, group.name, "", USM, group.security_level, "exact",
                                    group.read_view or "", group.write_view or "", group.notify_view or "")
    for view in cfg.views:
        for subtree in view.include:
            snmp_config.add_vacm_view(engine, view.name, "included", subtree, "")
        for subtree in view.exclude:
            snmp_config.add_vacm_view(engine, view.name, "excluded", subtree, "")


class Access:
    def __init__(self, engine: SnmpEngine, cfg: AgentConfig) -> None:
        self.engine = engine
        self.cfg = cfg
        self.vacm = engine.access_control_model[VACM]
        # Views are subtrees without masks, so the answer for an OID depends
        # only on who asks, the kind of access, and which configured subtrees
        # and TAP-MIB roots hold it, i.e. on the OID's first `_depth` arcs:
        # decisions are kept per those. Asking pysnmp's VACM per varbind was
        # a tenth of a SET.
        self._depth = max(len(t) for t in (*oids.TAP_ROOTS, *(t for v in cfg.views for t in (*v.include, *v.exclude))))
        self._decided: dict[tuple, str | None] = {}

    def check(self, who: Requester, view_type: str, oid: OID) -> str | None:
        """None if `who` may `view_type` ('read', 'write', 'notify') `oid`; else
        the RFC 3416 error status that says no (noAccess, authorizationError)."""
        key = (who.security_model, who.context, who.name, who.level, view_type, oid[:self._depth])
        decided = self._decided.get(key, _UNDECIDED)
        if decided is _UNDECIDED:
            if len(self._decided) > MAX_DECISIONS:
                self._decided.clear()
            decided = self._decided[key] = self._decide(who, view_type, oid)
        return decided

    def _decide(self, who: Requester, view_type: str, oid: OID) -> str | None:
        if who.security_model != USM or who.context != b"":
            return "noAccess"
        group = self.cfg.group_of(who.name)
        if group is None or who.level < group.level:
            return "authorizationError"
        if getattr(group, f"{view_type}_view") is None:
            return "noAccess"
        if oids.is_tap(oid) and not group.lawful_intercept:
            return "noAccess"
        return self._vacm(who, view_type, oid)

    def _vacm(self, who: Requester, view_type: str, oid: OID) -> str | None:
        try:
            refused = self.vacm.is_access_allowed(self.engine, USM, who.name.encode(), who.level, view_type, b"", oid)
        except error.StatusInformation as status:
            return "noAccess" if isinstance(status.get("errorIndication"), errind.NotInView) else "authorizationError"
        return "noAccess" if refused is not None else None

    def sees_tap(self, who: Requester) -> bool:
        """Whether `who` could read anything under .399/.394 at all (a walk of
        anyone else skips those subtrees whole)."""
        group = self.cfg.group_of(who.name) if who.security_model == USM else None
        return (group is not None and group.lawful_intercept and who.level >= group.level
                and group.read_view is not None and who.context == b"")


def watch_security_failures(engine: SnmpEngine, report: Callable[[str, str, str], None]) -> None:
    """Call report(actor, reason, model) for every message the security layer
    refused (unknown user, wrong digest, undecryptable, SNMPv1/v2c community),
    but not for USM's own discovery round-trips."""

    def observe(snmp_engine, execpoint, variables, context) -> None:
        try:
            status = variables.get("statusInformation") or {}
            indication = status.get("errorIndication")
            if isinstance(indication, _DISCOVERY):
                return
            address = address_text(variables.get("transportAddress"))
            model = variables.get("securityModel")
            if model == USM:
                user = "?"
                try:
                    params, _ = decoder.decode(bytes(variables.get("securityParameters") or b""),
                                               asn1Spec=UsmSecurityParameters())
                    user = safe_name(bytes(params.getComponentByPosition(3)))
                except Exception:  # an undecodable header is refused all the same
                    pass
                actor, version = f"snmp:{user} from {address}", "v3"
            else:
                actor, version = f"snmp:community from {address}", "v1" if model == 1 else "v2c"
            report(actor, str(indication or "refused"), version)
        except Exception:  # the audit must not take the agent down
            log.exception("could not record a refused SNMP message")

    engine.observer.register_observer(observe, "rfc3412.prepareDataElements:sm-failure",
                                      "rfc2576.prepareDataElements:sm-failure")
