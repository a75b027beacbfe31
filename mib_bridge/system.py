"""The few standard objects every SNMP agent answers: SNMPv2-MIB's system
group and SNMP-FRAMEWORK-MIB's snmpEngine group, read-only. They tell a
manager what it is talking to; access to them is governed by VACM like
everything else. sysDescr and sysObjectID are the config's (neutral by
default): every user may read them, and an IAP must not tell anyone who is
not lawful-intercept staff that it can intercept (RFC 3924 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mib_bridge import oids
from mib_bridge.oids import OID
from mib_bridge.scalars import Scalar
from mib_bridge.syntax import Integer, ObjectId, Octets, TimeTicks

SYS_SERVICES = 72  # transport (4) and application (7) layers


def system_scalars(sys_name: str, sys_location: str, sys_contact: str, started: float,
                   engine: Callable[[], tuple[bytes, int, int, int]], sys_descr: str,
                   sys_object_id: OID) -> list[Scalar]:
    """`engine` returns (snmpEngineID, snmpEngineBoots, snmpEngineTime, snmpEngineMaxMessageSize)."""
    text = Octets(0, 255)
    return [
        Scalar(oids.SYS_DESCR, "sysDescr", text, lambda: sys_descr.encode()),
        Scalar(oids.SYS_OBJECT_ID, "sysObjectID", ObjectId(), lambda: sys_object_id),
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
