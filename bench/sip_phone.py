"""The two phones of bench.sip_tap_latency, each run in its own network namespace.

    python -m bench.sip_phone callee SIGNAL_ADDR MEDIA_ADDR CALLER_ADDR RINGING_MS
    python -m bench.sip_phone caller SIGNAL_ADDR SERVER_ADDR MEDIA_ADDR INTERVAL_MS

The callee is the operator's SIP server answering for bob (UDP 5060 on its
signalling address): to call n's INVITE it says 180 and, `RINGING_MS` later,
200 OK with its media at MEDIA_ADDR; to the BYE, 200. The caller is user-n
(one SIP identity, and so one warrant, per call), driven line by line on
stdin so that the benchmark clocks each step from outside:

    call N PORT  -> INVITE with SDP (media on PORT); on the 200 OK, ACK, then
                    RTP every INTERVAL_MS to the answer's media address and
                    port, from PORT; prints "answered N"
    bye N        -> the RTP stops; BYE; on its 200, prints "ended N"
    media PORT   -> RTP from PORT to MEDIA_ADDR:PORT with no signalling (the
                    baseline's traffic); "stop" ends it; prints "media PORT"

The messages are the real sipp call's (bench.sip_calls.call_messages): what
the MD parses is what a deployed UA sends. Plain UDP sockets: the kernel
stamps the benchmark compares are taken on the wire and at the MD, not here.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

from bench.sip_calls import call_messages
from mediation.sip_parse import SipError, parse

SIP_PORT = 5060
WAIT = 10.0  # seconds for an answer before the caller gives up on a call


def caller_name(n: int) -> str:
    return f"user-{n}"


def messages(n: int, caller_at: str, server_at: str, media_at: str, port: int) -> list[bytes]:
    return call_messages(n, caller=caller_name(n), caller_at=caller_at, callee_at=server_at, media_port=port,
                         callee_media=media_at)


def _call_number(call_id: str) -> int:
    return int(call_id.split("-", 1)[0])


def callee(signal_at: str, media_at: str, caller_at: str, ringing_ms: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((signal_at, SIP_PORT))
    print("listening", flush=True)
    while True:
        data, source = sock.recvfrom(65535)
        try:
            msg = parse(data)
        except SipError:
            continue
        n = _call_number(msg.call_id)
        port = msg.media[0].rtp_port if msg.media else 0
        script = messages(n, caller_at, signal_at, media_at, port)
        if msg.method == "INVITE":
            sock.sendto(script[1], source)
            if ringing_ms > 0:
                time.sleep(ringing_ms / 1000)
            sock.sendto(script[2], source)
        elif msg.method == "BYE":
            sock.sendto(script[5], source)


class Caller:
    """One call at a time, and the RTP of the current one."""

    def __init__(self, signal_at: str, server_at: str, media_at: str, interval_ms: float) -> None:
        self.signal_at, self.server_at, self.media_at = signal_at, server_at, media_at
        self.gap = interval_ms / 1000
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((signal_at, SIP_PORT))
        self.rtp: socket.socket | None = None
        self.rtp_to: tuple[str, int] = ("", 0)
        self.seq = 0
        self.script: list[bytes] = []

    def _media(self, port: int, to: tuple[str, int]) -> None:
        self._stop_media()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((self.signal_at, port))
        self.rtp_to, self.seq = to, 0
        self._send_rtp()

    def _send_rtp(self) -> None:
        self.seq += 1
        header = struct.pack("!BBHII", 0x80, 8, self.seq & 0xFFFF, 160 * self.seq, 0x5150)
        self.rtp.sendto(header + bytes([0xD5]) * 160, self.rtp_to)

    def _stop_media(self) -> None:
        if self.rtp is not None:
            self.rtp.close()
            self.rtp = None

    def _answer(self, status: int, method: str) -> object:
        """The next final response to the current call's `method`."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sip], [], [], left)[0]:
                break
            try:
                msg = parse(self.sip.recv(65535))
            except SipError:
                continue
            if msg.status == status and msg.cseq_method == method:
                return msg
        raise RuntimeError(f"no {status} to the {method} within {WAIT:.0f}s")

    def command(self, line: str) -> str:
        word, *args = line.split()
        server = (self.server_at, SIP_PORT)
        if word == "call":
            n, port = int(args[0]), int(args[1])
            self.script = messages(n, self.signal_at, self.server_at, self.media_at, port)
            self.sip.sendto(self.script[0], server)
            answer = self._answer(200, "INVITE")
            self.sip.sendto(self.script[3], server)
            media = answer.media[0]
            self._media(port, (media.address, media.rtp_port))  # the answer's media, right after the 200 OK
            return f"answered {n}"
        if word == "bye":
            self._stop_media()
            self.sip.sendto(self.script[4], server)
            self._answer(200, "BYE")
            return f"ended {args[0]}"
        if word == "media":
            self._media(int(args[0]), (self.media_at, int(args[0])))
            return f"media {args[0]}"
        if word == "stop":
            self._stop_media()
            return "stopped"
        raise ValueError(f"unknown command {line!r}")

    def serve(self) -> None:
        """Commands from stdin; RTP every `gap` seconds in between."""
        due = time.monotonic()
        print("ready", flush=True)
        while True:
            timeout = max(0.0, due - time.monotonic()) if self.rtp is not None else None
            if select.select([sys.stdin], [], [], timeout)[0]:
                line = sys.stdin.readline()
                if not line:
                    return
                print(self.command(line), flush=True)
                due = time.monotonic() + self.gap
            elif self.rtp is not None:
                self._send_rtp()
                due += self.gap


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "callee":
        callee(args[0], args[1], args[2], float(args[3]))
    elif role == "caller":
        Caller(args[0], args[1], args[2], float(args[3])).serve()
    else:
        raise SystemExit(f"unknown role {role!r}: callee or caller")


if __name__ == "__main__":
    main(sys.argv[1:])
