"""The few standard objects every SNMP agent answers: SNMPv2-MIB's system
group and SNMP-FRAMEWORK-MIB's snmpEngine group, read-only. They tell a
manager what it is talking to; access to them is governed by VACM like
everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mib_bridge import oids
from mib_bridge.scalars import Scalar
from mib_bridge.syntax import Integer, ObjectId, Octets, TimeTicks

SYS_DESCR = "p4tap lawful-intercept content tap (RFC 3924): CISCO-TAP2-MIB and CISCO-IP-TAP-MIB agent"
ZERO_DOT_ZERO = (0, 0)  # sysObjectID: no registered product identifier
SYS_SERVICES = 72  # transport (4) and application (7) layers


def system_scalars(sys_name: str, sys_location: str, sys_contact: str, started: float,
                   engine: Callable[[], tuple[bytes, int, int, int]]) -> list[Scalar]:
    """`engine` returns (snmpEngineID, snmpEngineBoots, snmpEngineTime, snmpEngineMaxMessageSize)."""
    text = Octets(0, 255)
    return [
        Scalar(oids.SYS_DESCR, "sysDescr", text, lambda: SYS_DESCR.encode()),
        Scalar(oids.SYS_OBJECT_ID, "sysObjectID", ObjectId(), lambda: ZERO_DOT_ZERO),
        Scalar(oids.SYS_UP_TIME, "sysUpTime", TimeTicks(), lambda: int((time.monotonic() - started) * 100)),
        Scalar(oids.SYS_CONTACT, "sysContact", text, lambda: sys_contact.encode()),
        Scalar(oids.SYS_NAME, "sysName", text, lambda: sys_name.encode()),
        Scalar(oids.SYS_LOCATION, "sysLocation", text, lambda: sys_location.encode()),
        Scalar(oids.SYS_SERVICES, "sysServices", Integer(0, 127), lambda: SYS_SERVICES),
        Scalar(oids.SNMP_ENGINE_ID, "snmpEngineID", Octets(5, 32), lambda: engine()[0]),
        Scalar(oids.SNMP_ENGINE_BOOTS, "snmpEngineBoots", Integer(1, 2**31 - 1), lambda: engine()[1]),
        Scalar(oids.SNMP_ENGINE_TIME, "snmpEngineTime", Integer(0, 2**31 - 1), lambda: engine()[2]),
        Scalar(oids.SNMP_ENGINE_MAX_MESSAGE_SIZE, "snmpEngineMaxMessageSize", Integer(484, 2**31 - 1),
               lambda: engine()[3]),
    ]
