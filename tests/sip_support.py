"""SIP messages for the VoIP tests: the ones real sipp runs sent (captured on
loopback into tests/fixtures/sip/), and variants of them for the cases sipp's
embedded scenarios do not play (forking, re-INVITE, 183, CANCEL, 4xx)."""
from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "sip"


def sipp_call(transport: str = "udp") -> list[bytes]:
    """A whole sipp uac -> uas call: INVITE, 180, 200, ACK, BYE, 200."""
    return [p.read_bytes() for p in sorted((FIXTURES / f"sipp_{transport}_call").glob("*.sip"))]


def sdp(address: str, port: int, extra: str = "") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n{extra}").encode()


def variant(raw: bytes, *, first_line: str | None = None, headers: dict[str, str | None] | None = None,
            body: bytes | None = None) -> bytes:
    """raw with its start line, some headers (None: removed) or its body replaced;
    Content-Length (and Content-Type for a new SDP body) kept right."""
    head, _, old_body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    if first_line is not None:
        lines[0] = first_line
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/sdp" if body else None)
    new_body = old_body if body is None else body
    headers["Content-Length"] = str(len(new_body))
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(":", 1)[0].strip()
        match = next((h for h in headers if h.lower() == name.lower()), None)
        if match is None:
            out.append(line)
        elif headers[match] is not None:
            out.append(f"{name}: {headers.pop(match)}")
        else:
            headers.pop(match)
    out += [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(out) + "\r\n\r\n").encode() + new_body


def set_tag(value: str, tag: str | None) -> str:
    value = re.sub(r";tag=[^;]*", "", value)
    return value if tag is None else f"{value};tag={tag}"


def header(raw: bytes, name: str) -> str:
    for line in raw.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]:
        if line.split(":", 1)[0].strip().lower() == name.lower():
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def ip_filter_of(f):
    """The IAP's IpFilter for an MD Filter, column for column as the SNMP agent
    maps citapStreamEntry: for tests that provision through the controller or
    the in-process switch rather than over SNMPv3."""
    import ipaddress

    from controller.model import InetAddressType, IpFilter

    def split(prefix):
        if prefix is None:
            return None, 0
        net = ipaddress.ip_network(prefix, strict=False)
        return net.network_address, net.prefixlen

    (sa, sl), (da, dl) = split(f.src), split(f.dst)
    version = (ipaddress.ip_network(f.src or f.dst)).version
    return IpFilter(InetAddressType.IPV4 if version == 4 else InetAddressType.IPV6, dst_address=da, dst_length=dl,
                    src_address=sa, src_length=sl, protocol=f.protocol,
                    dst_port_min=f.dst_ports[0], dst_port_max=f.dst_ports[1],
                    src_port_min=f.src_ports[0], src_port_max=f.src_ports[1])
