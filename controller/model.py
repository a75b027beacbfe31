"""The intercept model: TAP-MIB rows as plain, validated data.

A `Mediation` mirrors a cTap2MediationEntry (where copies go and until
when), an `IpFilter` a citapStreamEntry (what to copy, with the MIB's own
wildcard encodings), and a `Stream` a cTap2StreamEntry (which ties a filter to
a mediation and switches it on). Values are checked on construction, so an
object of these types is always something the pipeline can express; anything
else raises `InterceptError` with the reason, before any switch is touched.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from datetime import datetime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_CONTENT_ID = 2**31 - 1
DEFAULT_DSCP = 34  # cTap2MediationDscp DEFVAL (AF41)
PORT_MAX = 65535
FLOW_LABEL_MAX = 2**20 - 1


class InterceptError(ValueError):
    """Input from which no intercept can be built; the message says why."""


class InetAddressType(enum.IntEnum):
    """INET-ADDRESS-MIB InetAddressType."""

    UNKNOWN = 0
    IPV4 = 1
    IPV6 = 2
    IPV4Z = 3
    IPV6Z = 4
    DNS = 16


class Transport(enum.IntEnum):
    """cTap2MediationTransport."""

    UDP = 1
    RTP_NACK = 2
    TCP = 3
    SCTP = 4
    RTP = 5


SUPPORTED_TRANSPORTS = frozenset({Transport.UDP})


class Interface(enum.IntEnum):
    """Special values of citapStreamInterface."""

    ANY = 0
    ROUTED = -1  # the interface routing picks for the destination prefix
    VOIP = -2  # a VoIP session: not a data-plane filter


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InterceptError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InterceptError(f"{name} {value} is outside {low}..{high}")


def address_type_of(address: IPAddress) -> InetAddressType:
    return InetAddressType.IPV4 if address.version == 4 else InetAddressType.IPV6


@dataclass(frozen=True)
class Mediation:
    """A cTap2MediationEntry: one mediation device and one content ID (CCCID).

    `timeout` is absolute (the MIB's DateAndTime) and timezone-aware; None
    means no lifetime was given, which the controller refuses to install.
    """

    content_id: int
    dest_address: IPAddress
    dest_port: int
    src_interface: int = 0
    dscp: int = DEFAULT_DSCP
    transport: Transport = Transport.UDP
    timeout: datetime | None = None
    notification_enable: bool = True
    active: bool = True

    def __post_init__(self) -> None:
        _check_range("cTap2MediationContentId", self.content_id, 1, MAX_CONTENT_ID)
        if not isinstance(self.dest_address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise InterceptError(
                f"cTap2MediationDestAddress must be an IPv4 or IPv6 address, got {self.dest_address!r}"
            )
        _check_range("cTap2MediationDestPort", self.dest_port, 1, PORT_MAX)
        _check_range("cTap2MediationSrcInterface", self.src_interface, 0, 2**31 - 1)
        _check_range("cTap2MediationDscp", self.dscp, 0, 63)
        if self.transport not in SUPPORTED_TRANSPORTS:
            raise InterceptError(
                f"cTap2MediationTransport {Transport(self.transport).name.lower()}"
                f"({int(self.transport)}) is not supported: only udp(1)"
            )
        if self.timeout is not None and self.timeout.tzinfo is None:
            raise InterceptError("cTap2MediationTimeout must carry a timezone")

    def expired(self, now: datetime) -> bool:
        return self.timeout is not None and now >= self.timeout


@dataclass(frozen=True)
class IpFilter:
    """A citapStreamEntry, keeping the MIB's encodings.

    Wildcards as the MIB defines them: a prefix length of 0 matches every
    address; protocol -1 matches every protocol (0 is protocol 0); port ranges
    0..65535 match everything, including packets without TCP/UDP; TosByte and
    TosByteMask 0/0 match every TOS; FlowId -1 matches every flow label;
    Interface 0 is any interface; VRF "" is the global routing table.
    Host bits beyond a prefix length are ignored, as a router ignores them.
    """

    addr_type: InetAddressType = InetAddressType.IPV4
    dst_address: IPAddress | None = None
    dst_length: int = 0
    src_address: IPAddress | None = None
    src_length: int = 0
    interface: int = Interface.ANY
    tos_byte: int = 0
    tos_mask: int = 0
    flow_id: int = -1
    protocol: int = -1
    dst_port_min: int = 0
    dst_port_max: int = PORT_MAX
    src_port_min: int = 0
    src_port_max: int = PORT_MAX
    vrf: str = ""

    def __post_init__(self) -> None:
        if self.addr_type not in (InetAddressType.IPV4, InetAddressType.IPV6):
            raise InterceptError(
                f"citapStreamAddrType {int(self.addr_type)} is not supported: only ipv4(1) or ipv6(2)"
            )
        bits = self.address_bits
        for which, address, length in (
            ("Destination", self.dst_address, self.dst_length),
            ("Source", self.src_address, self.src_length),
        ):
            _check_range(f"citapStream{which}Length", length, 0, bits)
            if address is None:
                if length:
                    raise InterceptError(f"citapStream{which}Length {length} given without an address")
                continue
            if address.version != self.family:
                raise InterceptError(
                    f"citapStream{which}Address {address} is not an "
                    f"{'IPv4' if self.family == 4 else 'IPv6'} address, as citapStreamAddrType says"
                )
        _check_range("citapStreamInterface", self.interface, Interface.VOIP, 2**31 - 1)
        _check_range("citapStreamTosByte", self.tos_byte, 0, 255)
        _check_range("citapStreamTosByteMask", self.tos_mask, 0, 255)
        if self.tos_byte & ~self.tos_mask:
            raise InterceptError(
                f"citapStreamTosByte {self.tos_byte:#04x} has bits outside "
                f"citapStreamTosByteMask {self.tos_mask:#04x}"
            )
        _check_range("citapStreamFlowId", self.flow_id, -1, FLOW_LABEL_MAX)
        if self.flow_id != -1 and self.family == 4:
            raise InterceptError("citapStreamFlowId is an IPv6 flow label; it must be -1 on an IPv4 filter")
        _check_range("citapStreamProtocol", self.protocol, -1, 255)
        for which in ("Dest", "Source"):
            low = getattr(self, "dst_port_min" if which == "Dest" else "src_port_min")
            high = getattr(self, "dst_port_max" if which == "Dest" else "src_port_max")
            _check_range(f"citapStream{which}L4PortMin", low, 0, PORT_MAX)
            _check_range(f"citapStream{which}L4PortMax", high, 0, PORT_MAX)
            if low > high:
                raise InterceptError(f"citapStream{which}L4PortMin {low} exceeds citapStream{which}L4PortMax {high}")

    @property
    def family(self) -> int:
        return 4 if self.addr_type == InetAddressType.IPV4 else 6

    @property
    def address_bits(self) -> int:
        return 32 if self.family == 4 else 128

    def prefix(self, which: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The source ("src") or destination ("dst") prefix, host bits cleared."""
        address = getattr(self, f"{which}_address")
        length = getattr(self, f"{which}_length")
        if address is None:
            address = ipaddress.ip_address(0 if self.family == 4 else "::")
        return ipaddress.ip_network(f"{address}/{length}", strict=False)


@dataclass(frozen=True)
class StreamKey:
    """(cTap2MediationContentId, cTap2StreamIndex): a stream's MIB index."""

    content_id: int
    index: int

    def __str__(self) -> str:
        return f"{self.content_id}.{self.index}"


@dataclass(frozen=True)
class Stream:
    """A cTap2StreamEntry of type ip(1) with its citapStreamEntry filter."""

    content_id: int
    index: int
    filter: IpFilter
    enabled: bool = False  # cTap2StreamInterceptEnable, DEFVAL false

    def __post_init__(self) -> None:
        _check_range("cTap2MediationContentId", self.content_id, 1, MAX_CONTENT_ID)
        _check_range("cTap2StreamIndex", self.index, 1, 2**31 - 1)

    @property
    def key(self) -> StreamKey:
        return StreamKey(self.content_id, self.index)
