"""Capture files of intercepted content: classic pcap with LINKTYPE_RAW, so
each record is one intercepted IP packet (IPv4 or IPv6, no link layer) with
its arrival time, as Wireshark and tshark read it directly. The CCCID is in
the file's name (`cccid-<N>.pcap`): one file per intercept.

Written by hand (a 24-byte header, a 16-byte header per record) rather than
through scapy: the writer runs for every packet and must keep up.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

LINKTYPE_RAW = 101
SNAPLEN = 262144
PCAP_MAGIC_US = 0xA1B2C3D4
GLOBAL_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


def capture_name(cccid: int) -> str:
    return f"cccid-{cccid}.pcap"


class CaptureError(ValueError):
    """A file that is not a pcap of raw IP packets."""


class CaptureWriteError(OSError):
    """The disk refused records (full, read-only): `lost` packets were not
    written, and the file was cut back to its last whole record."""

    def __init__(self, error: OSError, lost: int) -> None:
        super().__init__(error.errno, error.strerror, error.filename)
        self.lost = lost


class RawPcapWriter:
    """Appends records to a new pcap file (LINKTYPE_RAW, microsecond stamps).

    Whole records or none: records are buffered here and written at the
    offset after the last whole one; a write the disk refuses (ENOSPC, EROFS)
    is cut back, so the file stays readable and later records can follow
    once there is room (`CaptureWriteError` says how many were lost)."""

    def __init__(self, path: Path, buffering: int = 1 << 16) -> None:
        self.path = path
        # intercepted content: readable by its owner only, from the first byte on
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        self.fd: int | None = fd
        self.limit = buffering
        self.buffer = bytearray(GLOBAL_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW))
        self.good = 0  # bytes of whole records (and the header) on disk
        self.pending = 0  # records in the buffer
        self.packets = 0

    def write(self, stamp: float, packet: bytes) -> None:
        seconds = int(stamp)
        micros = min(int(round((stamp - seconds) * 1_000_000)), 999_999)
        self.buffer += RECORD_HEADER.pack(seconds, micros, len(packet), len(packet))
        self.buffer += packet
        self.pending += 1
        self.packets += 1
        if len(self.buffer) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.buffer or self.fd is None:
            return
        view, offset = memoryview(self.buffer), self.good
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as error:
            view.release()
            lost, self.pending = self.pending, 0
            self.packets -= lost
            try:
                os.ftruncate(self.fd, self.good)  # shrinking needs no room
            except OSError:
                pass
            header = self.buffer[:GLOBAL_HEADER.size] if self.good == 0 else b""
            self.buffer = bytearray(header)  # the header goes first whenever the disk takes it
            raise CaptureWriteError(error, lost) from error
        view.release()
        self.good, self.pending = offset, 0
        self.buffer = bytearray()

    def close(self) -> None:
        if self.fd is None:
            return
        try:
            self.flush()
        finally:
            os.close(self.fd)
            self.fd = None


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(time, IP packet) of every record of a LINKTYPE_RAW pcap written above."""
    data = Path(path).read_bytes()
    if len(data) < GLOBAL_HEADER.size:
        raise CaptureError(f"{path}: too short for a pcap header")
    magic, _, _, _, _, _, linktype = GLOBAL_HEADER.unpack_from(data)
    if magic != PCAP_MAGIC_US or linktype != LINKTYPE_RAW:
        raise CaptureError(f"{path}: not a little-endian microsecond pcap of raw IP (magic {magic:#x}, "
                           f"link type {linktype})")
    out, offset = [], GLOBAL_HEADER.size
    while offset + RECORD_HEADER.size <= len(data):
        seconds, micros, caplen, _ = RECORD_HEADER.unpack_from(data, offset)
        offset += RECORD_HEADER.size
        out.append((seconds + micros / 1e6, data[offset:offset + caplen]))
        offset += caplen
    return out
