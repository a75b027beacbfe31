"""Every object identifier the agent serves, and the column numbers of its tables.

Numbers are those of CISCO-TAP2-MIB and CISCO-IP-TAP-MIB (../shared/mibs/);
real mediation devices address them numerically, and so does this package.
"""

from __future__ import annotations

OID = tuple[int, ...]


def parse(text: str) -> OID:
    """'1.3.6.1' or '.1.3.6.1' -> (1, 3, 6, 1); ValueError for anything else."""
    parts = text.strip().lstrip(".").split(".")
    oid = tuple(int(p) for p in parts)
    if len(oid) < 2 or any(p < 0 or p > 2**32 - 1 for p in oid):
        raise ValueError(f"{text!r} is not an object identifier")
    return oid


def text(oid: OID) -> str:
    return ".".join(str(p) for p in oid)


def within(oid: OID, root: OID) -> bool:
    return oid[: len(root)] == root


def after_subtree(root: OID) -> OID:
    """The smallest OID greater than every OID in `root`'s subtree."""
    return root[:-1] + (root[-1] + 1,)


# -- SNMPv2-MIB / SNMP-FRAMEWORK-MIB (served read-only, for every user's view) --
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR, SYS_OBJECT_ID, SYS_UP_TIME, SYS_CONTACT, SYS_NAME, SYS_LOCATION, SYS_SERVICES = (
    SYSTEM + (n,) for n in (1, 2, 3, 4, 5, 6, 7))
SNMP_ENGINE = (1, 3, 6, 1, 6, 3, 10, 2, 1)
SNMP_ENGINE_ID, SNMP_ENGINE_BOOTS, SNMP_ENGINE_TIME, SNMP_ENGINE_MAX_MESSAGE_SIZE = (
    SNMP_ENGINE + (n,) for n in (1, 2, 3, 4))

# -- CISCO-TAP2-MIB ------------------------------------------------------------
TAP2 = (1, 3, 6, 1, 4, 1, 9, 9, 399)
TAP2_NOTIFS = TAP2 + (0,)
NOTIFY_MIB_ACTIVE = TAP2_NOTIFS + (1,)
NOTIFY_MEDIATION_TIMED_OUT = TAP2_NOTIFS + (2,)
NOTIFY_MEDIATION_DEBUG = TAP2_NOTIFS + (3,)
NOTIFY_STREAM_DEBUG = TAP2_NOTIFS + (4,)
NOTIFY_SWITCHOVER = TAP2_NOTIFS + (5,)

MEDIATION_GROUP = TAP2 + (1, 1)
MEDIATION_NEW_INDEX = MEDIATION_GROUP + (1,)
MEDIATION_ENTRY = MEDIATION_GROUP + (2, 1)
MEDIATION_CAPABILITIES = MEDIATION_GROUP + (3,)

STREAM_ENTRY = TAP2 + (1, 2, 1, 1)

DEBUG_GROUP = TAP2 + (1, 3)
DEBUG_AGE = DEBUG_GROUP + (1,)
DEBUG_MAX_ENTRIES = DEBUG_GROUP + (2,)
DEBUG_ENTRY = DEBUG_GROUP + (3, 1)

# -- CISCO-IP-TAP-MIB ----------------------------------------------------------
IP_TAP = (1, 3, 6, 1, 4, 1, 9, 9, 394)
IP_STREAM_CAPABILITIES = IP_TAP + (1, 1, 1)
IP_STREAM_ENTRY = IP_TAP + (1, 1, 2, 1)

#: The subtrees only the lawful-intercept group may see, write or be notified about.
TAP_ROOTS = (IP_TAP, TAP2)


def is_tap(oid: OID) -> bool:
    return any(within(oid, root) for root in TAP_ROOTS)


class MediationColumn:
    CONTENT_ID = 1  # not-accessible index
    DEST_ADDRESS_TYPE = 2
    DEST_ADDRESS = 3
    DEST_PORT = 4
    SRC_INTERFACE = 5
    RTCP_PORT = 6
    DSCP = 7
    DATA_TYPE = 8
    RETRANSMIT_TYPE = 9
    TIMEOUT = 10
    TRANSPORT = 11
    NOTIFICATION_ENABLE = 12
    STATUS = 13


class StreamColumn:
    INDEX = 1  # not-accessible index
    TYPE = 2
    INTERCEPT_ENABLE = 3
    INTERCEPTED_PACKETS = 4
    INTERCEPT_DROPS = 5
    STATUS = 6
    INTERCEPTED_HC_PACKETS = 7
    INTERCEPT_HC_DROPS = 8


class IpStreamColumn:
    INTERFACE = 1
    ADDR_TYPE = 2
    DESTINATION_ADDRESS = 3
    DESTINATION_LENGTH = 4
    SOURCE_ADDRESS = 5
    SOURCE_LENGTH = 6
    TOS_BYTE = 7
    TOS_BYTE_MASK = 8
    FLOW_ID = 9
    PROTOCOL = 10
    DEST_L4_PORT_MIN = 11
    DEST_L4_PORT_MAX = 12
    SOURCE_L4_PORT_MIN = 13
    SOURCE_L4_PORT_MAX = 14
    VRF = 15
    STATUS = 16


class DebugColumn:
    INDEX = 1  # not-accessible index
    MEDIATION_ID = 2
    STREAM_ID = 3
    MESSAGE = 4
    STATUS = 5


# Enumerations used on the wire.
TRUE, FALSE = 1, 2  # TruthValue
STREAM_TYPE_IP = 1

# BITS values: bit 0 is the most significant bit of the first octet.
MEDIATION_CAP_BITS = {"ipV4SrcInterface": 0, "ipV6SrcInterface": 1, "udp": 2, "rtpNack": 3, "tcp": 4,
                      "sctp": 5, "rtp": 6}
IP_STREAM_CAP_BITS = {"tapEnable": 0, "interface": 1, "ipV4": 2, "ipV6": 3, "l4Port": 4, "dscp": 5, "voip": 6}


def bits(names: list[str], numbering: dict[str, int]) -> bytes:
    """An SMIv2 BITS value (as its OCTET STRING) with the named bits set."""
    positions = [numbering[n] for n in names]
    out = bytearray((max(positions, default=0) // 8) + 1)
    for p in positions:
        out[p // 8] |= 0x80 >> (p % 8)
    return bytes(out)
