"""SIP messages and their SDP, as the MD's VoIP IRI function needs them (issue 15).

Why its own module: the signalling tap hands the MD copies of SIP messages of
every subscriber; this module turns one message into a small `SipMessage`
(dialog keys, the identities it names, the media endpoints its SDP offers or
answers), so the call machine (mediation/sip_calls.py) works on facts and
not on text.

What is kept and what is written here, and why:
- the SIP grammar is `sipmessage` (PyPI, BSD-2, pure Python, typed): request
  and status lines, headers with their compact forms, addresses and their
  tags, Via branches, CSeq, Authorization credentials;
- the SDP grammar is `sdp-transform` (PyPI, MIT, the Python port of the
  JavaScript library WebRTC stacks use): c=, m=, a=rtcp, a=rtcp-mux; the
  SDP part of a multipart body is found by the standard library's `email`;
- written here: which headers carry a subscriber's identity (OpenLI's
  collector is the reference: To, P-Asserted-Identity, Remote-Party-ID, the
  username and realm of Authorization and Proxy-Authorization; From alone is
  what the caller claims and is not trusted), which RTP and RTCP ports an m=
  line means (RFC 3550 port+1, RFC 3605 a=rtcp, RFC 5761 mux; port 0 and
  c=0.0.0.0 carry no media), and `split_stream`: cutting a TCP byte stream
  into messages by Content-Length (RFC 3261 18.3), which neither library does.
"""
from __future__ import annotations

import email
import email.policy
import ipaddress
import re
from dataclasses import dataclass

import sdp_transform
import sipmessage

from mediation.stream_filter import Filter

UDP = 17
MAX_MESSAGE = 65535  # a SIP message larger than the largest UDP datagram is junk
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_START = re.compile(rb"^(?:SIP/2\.0 \d{3} |[A-Z]+ \S+ SIP/2\.0\r\n)")
_NEXT_START = re.compile(rb"\r\n(?:SIP/2\.0 \d{3} |[A-Z]+ \S+ SIP/2\.0\r\n)")


class SipError(ValueError):
    """A payload that is not a SIP message this module can use (one line, why)."""


@dataclass(frozen=True, order=True)
class MediaEndpoint:
    """Where one party of a call receives one media stream: RTP and RTCP ports."""

    address: str
    rtp_port: int
    rtcp_port: int

    def filters(self) -> tuple[Filter, ...]:
        """The narrow stream filters of this endpoint's media both ways: UDP to
        its address on its RTP and RTCP ports (what it receives), and UDP from
        its address and those ports (what it sends: symmetric RTP, RFC 4961).
        One port range where RTP and RTCP are adjacent or the same, else one
        filter per port. Why both ways: the offer's endpoint is known at the
        INVITE, the answer's only at the 183/200, and media starts 1-3 ms after
        that; tapped both ways, the offer's endpoint alone covers the call from
        while the phone rings, and the answer's adds what symmetric RTP would
        not (tests/test_sip_switch.py)."""
        prefix = f"{self.address}/{ipaddress.ip_address(self.address).max_prefixlen}"
        low, high = sorted((self.rtp_port, self.rtcp_port))
        ranges = [(low, high)] if high - low <= 1 else [(low, low), (high, high)]
        return tuple([Filter(dst=prefix, protocol=UDP, dst_ports=r) for r in ranges]
                     + [Filter(src=prefix, protocol=UDP, src_ports=r) for r in ranges])


@dataclass(frozen=True)
class Identity:
    """A SIP identity: user part (or tel: number), and host (None for tel:)."""

    user: str
    host: str | None = None


@dataclass(frozen=True)
class SipMessage:
    """What one SIP message says about a call."""

    method: str | None            # the request's method; None for a response
    status: int | None            # the response's code; None for a request
    call_id: str
    cseq: int
    cseq_method: str
    from_tag: str | None
    to_tag: str | None
    branch: str | None            # top Via branch: names the transaction
    identities: tuple[Identity, ...]
    media: tuple[MediaEndpoint, ...] | None  # None: no SDP in the message
    raw: bytes

    @property
    def is_request(self) -> bool:
        return self.method is not None


def _identity_of_uri(uri: sipmessage.URI) -> Identity | None:
    if uri.scheme == "tel":
        return Identity(uri.user) if uri.user else None
    if not uri.user:
        return None
    return Identity(uri.user, uri.host.lower() if uri.host else None)


def _addresses(msg: sipmessage.Message, header: str) -> list[sipmessage.Address]:
    found = []
    for value in msg.headers.getlist(header):
        try:
            found += sipmessage.Address.parse_many(value)
        except ValueError:
            continue  # one malformed identity header must not hide the others
    return found


def identities(msg: sipmessage.Message) -> tuple[Identity, ...]:
    """The identities a message names, OpenLI's way (see the module docstring)."""
    found: list[Identity] = []
    uris = [msg.to_address.uri]
    uris += [a.uri for h in ("P-Asserted-Identity", "Remote-Party-ID") for a in _addresses(msg, h)]
    for uri in uris:
        ident = _identity_of_uri(uri)
        if ident is not None:
            found.append(ident)
    for header in ("Authorization", "Proxy-Authorization"):
        for value in msg.headers.getlist(header):
            try:
                params = sipmessage.AuthCredentials.parse(value).parameters
            except ValueError:
                continue
            if params.get("username"):
                found.append(Identity(params["username"], params.get("realm", "").lower() or None))
    return tuple(dict.fromkeys(found))


def sdp_media(body: bytes) -> tuple[MediaEndpoint, ...]:
    """The endpoints an SDP body offers or answers: one per m= line with a
    port, its own c= or the session's; rejected (port 0) and on-hold
    (c=0.0.0.0 or ::) lines carry no media and give none."""
    try:
        sdp = sdp_transform.parse(body.decode("utf-8", "replace"))
    except Exception as exc:  # sdp-transform raises whatever its regexes raise on junk
        raise SipError(f"SDP does not parse: {exc}") from None
    session_ip = (sdp.get("connection") or {}).get("ip")
    found: list[MediaEndpoint] = []
    for m in sdp.get("media", []):
        port = int(m.get("port") or 0)
        address = (m.get("connection") or {}).get("ip") or session_ip
        if port == 0 or address is None:
            continue
        try:
            ip = ipaddress.ip_address(address.split("/")[0])
        except ValueError:
            continue  # an FQDN in c=: no address to tap (RFC 4566 allows it, nobody sends it)
        if ip.is_unspecified:
            continue
        rtcp = m.get("rtcp") or {}
        rtcp_port = port if m.get("rtcpMux") else int(rtcp.get("port") or port + 1)
        found.append(MediaEndpoint(str(ip), port, rtcp_port))
    return tuple(dict.fromkeys(found))


def _sdp_body(content_type: str, body: bytes) -> bytes | None:
    """The SDP in a body: the body itself, or the application/sdp part of a
    multipart one (SIP-I/SIP-T carry ISUP beside it, RFC 3204), read by the
    standard library's MIME parser."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/sdp":
        return body if body.strip() else None
    if not kind.startswith("multipart/"):
        return None
    mime = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                                    policy=email.policy.compat32)
    for part in mime.walk():
        if part.get_content_type() == "application/sdp":
            payload = part.get_payload(decode=True)
            return payload if payload and payload.strip() else None
    return None


def parse(data: bytes) -> SipMessage:
    """One SIP message (a UDP datagram's payload, or one cut by split_stream)."""
    try:
        msg = sipmessage.Message.parse(data)
        if isinstance(msg, sipmessage.Request):
            method, status = msg.method.upper(), None
        else:
            method, status = None, msg.code
        cseq, vias, ctype = msg.cseq, msg.via, msg.content_type
        sdp = _sdp_body(str(ctype), msg.body) if ctype is not None else None
        media = sdp_media(sdp) if sdp else None
        return SipMessage(method, status, msg.call_id, cseq.sequence, cseq.method.upper(),
                          msg.from_address.parameters.get("tag"), msg.to_address.parameters.get("tag"),
                          vias[0].parameters.get("branch") if vias else None, identities(msg), media, data)
    except SipError:
        raise
    # sipmessage raises ValueError for what its grammar refuses, KeyError for a
    # missing mandatory header, and what its properties raise on damaged values
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise SipError(f"not a SIP message: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole messages at the front of a stream buffer, and what is left.

    Keep-alive CRLFs between messages are dropped (RFC 5626 3.5.1). When the
    buffer's first message cannot be framed (no start line: a tap that joined
    mid-stream; no Content-Length; longer than MAX_MESSAGE) it raises
    SipError, and the caller skips to the next start line with `resync`;
    messages framed before such a one are returned first.
    """
    messages: list[bytes] = []
    while True:
        buffer = buffer.lstrip(b"\r\n")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_MESSAGE:
                return _fail(messages, buffer, "SIP header longer than 64 KiB")
            if b"\r\n" in buffer and not _START.match(buffer):   # its first line is whole, and no start line
                return _fail(messages, buffer, "stream does not start with a SIP request or status line")
            return messages, buffer
        if not _START.match(buffer):
            return _fail(messages, buffer, "stream does not start with a SIP request or status line")
        found = _CONTENT_LENGTH.search(buffer[:end + 2])
        if found is None:
            return _fail(messages, buffer, "SIP message over a stream without Content-Length")
        total = end + 4 + int(found.group(1))
        if total > MAX_MESSAGE:
            return _fail(messages, buffer, "SIP message longer than 64 KiB")
        if len(buffer) < total:
            return messages, buffer
        messages.append(buffer[:total])
        buffer = buffer[total:]


def _fail(messages: list[bytes], buffer: bytes, why: str) -> tuple[list[bytes], bytes]:
    if messages:
        return messages, buffer   # the caller meets the error on its next call
    raise SipError(why)


def resync(buffer: bytes) -> bytes:
    """The buffer from the next SIP start line after its first byte (a tap
    joined mid-message, or a message could not be framed); what may still
    become one if it is only cut short; else nothing."""
    found = _NEXT_START.search(buffer, 1)
    if found:
        return buffer[found.start() + 2:]
    tail = buffer.rfind(b"\r\n", 1)
    return buffer[tail + 2:] if tail >= 0 and len(buffer) - tail < 64 else b""
