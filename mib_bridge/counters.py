"""The SNMP agent's message counters (SNMPv2-MIB snmpInPkts and friends,
SNMP-USER-BASED-SM-MIB usmStats*) as the sum of what pysnmp and the fast
path saw.

They stay pysnmp's scalars, where its MIB instrumentation and its USM
read and increment them. The fast path counts in plain integers (a pyasn1
`+= 1` costs more than refusing a junk datagram) and adds them to pysnmp's
scalars before anything reads them: before it serves a request, before a
datagram goes to pysnmp, and on the agent's tick.
"""

from __future__ import annotations

from collections import Counter

IN_PKTS, PARSE_ERRS, BAD_VERSIONS = "snmpInPkts", "snmpInASNParseErrs", "snmpInBadVersions"
UNSUPPORTED_LEVELS, NOT_IN_TIME, UNKNOWN_USERS = ("usmStatsUnsupportedSecLevels", "usmStatsNotInTimeWindows",
                                                  "usmStatsUnknownUserNames")
UNKNOWN_ENGINES, WRONG_DIGESTS, DECRYPTION_ERRORS = ("usmStatsUnknownEngineIDs", "usmStatsWrongDigests",
                                                     "usmStatsDecryptionErrors")
INVALID_MSGS = "snmpInvalidMsgs"
MODULES = {IN_PKTS: "__SNMPv2-MIB", INVALID_MSGS: "__SNMP-MPD-MIB", PARSE_ERRS: "__SNMPv2-MIB", BAD_VERSIONS: "__SNMPv2-MIB",
           **{name: "__SNMP-USER-BASED-SM-MIB" for name in (UNSUPPORTED_LEVELS, NOT_IN_TIME, UNKNOWN_USERS,
                                                            UNKNOWN_ENGINES, WRONG_DIGESTS, DECRYPTION_ERRORS)}}


class Counters:
    def __init__(self, engine) -> None:
        builder = engine.get_mib_builder()
        self._scalars = {name: builder.import_symbols(module, name)[0] for name, module in MODULES.items()}
        self._pending: Counter[str] = Counter()

    def count(self, *names: str) -> None:
        for name in names:
            self._pending[name] += 1

    def sync(self) -> None:
        """Add what the fast path counted to pysnmp's scalars (on the agent's loop)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        for name, n in pending.items():
            self._scalars[name].syntax += n

    def value(self, name: str) -> int:
        self.sync()
        return int(self._scalars[name].syntax)


SNMP_GROUP = (1, 3, 6, 1, 2, 1, 11)  # SNMPv2-MIB snmp group
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)  # SNMP-USER-BASED-SM-MIB usmStats
MPD_STATS = (1, 3, 6, 1, 6, 3, 11, 2, 1)  # SNMP-MPD-MIB snmpMPDStats
ARCS = {IN_PKTS: SNMP_GROUP + (1,), INVALID_MSGS: MPD_STATS + (2,), BAD_VERSIONS: SNMP_GROUP + (3,), PARSE_ERRS: SNMP_GROUP + (6,),
        UNSUPPORTED_LEVELS: USM_STATS + (1,), NOT_IN_TIME: USM_STATS + (2,), UNKNOWN_USERS: USM_STATS + (3,),
        UNKNOWN_ENGINES: USM_STATS + (4,), WRONG_DIGESTS: USM_STATS + (5,), DECRYPTION_ERRORS: USM_STATS + (6,)}


def counter_scalars(counters: Counters) -> list:
    """The counters as the agent's own read-only scalars (the agent's tree is
    its own, not pysnmp's instrumentation): a GET of them answers the truth."""
    from mib_bridge.scalars import Scalar
    from mib_bridge.syntax import Counter32

    return [Scalar(oid, name, Counter32(), lambda name=name: counters.value(name))
            for name, oid in sorted(ARCS.items(), key=lambda item: item[1])]
