"""The part of bmv2's Thrift runtime interface that configures egress queues.

bmv2 sets queue rates and depths only through Thrift (``simple_switch_CLI``:
``set_queue_rate``, ``set_queue_depth``); P4Runtime has no message for them.
So that the same commands work on this switch, ``--thrift-port`` starts a
server speaking Thrift's binary protocol with bmv2's multiplexed service
names, answering:

* ``simple_switch``: ``set_egress_[priority_]queue_depth``,
  ``set_all_egress_queue_depths``, ``set_egress_[priority_]queue_rate``,
  ``set_all_egress_queue_rates``, ``get_time_elapsed_us``,
  ``get_time_since_epoch_us``;
* ``standard``: ``bm_get_config`` and ``bm_get_config_md5`` (the CLI reads
  the JSON at startup).

Every other method answers a Thrift application exception naming it
(table, counter, PRE and mirroring state belongs to P4Runtime here).  The
server listens on 127.0.0.1 only: it has no authentication.

:class:`ThriftClient` speaks the same protocol, so tests, benchmarks and the
demo can set queues on bmv2 and on this switch without bmv2's Python
packages (``bmv2_topo.bmv2_switch.Bmv2Switch.set_queue_rate``).
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Self

from .queues import QueueError

__all__ = ["ThriftClient", "ThriftError", "ThriftServer"]

log = logging.getLogger("softswitch.thrift")

# TType
STOP, BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = 0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15
# TMessageType
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4
VERSION_1 = 0x80010000
# TApplicationException types
UNKNOWN_METHOD, INTERNAL_ERROR, PROTOCOL_ERROR = 1, 6, 7

_FIXED = {BOOL: ">b", BYTE: ">b", DOUBLE: ">d", I16: ">h", I32: ">i", I64: ">q"}


class ThriftError(Exception):
    """A Thrift application exception (from the peer, or to send to it)."""

    def __init__(self, message: str, kind: int = INTERNAL_ERROR) -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------- codec


def _read_exact(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if b is None or len(b) != n:
        raise EOFError
    return b


def _read_value(f: BinaryIO, ttype: int, depth: int = 0) -> Any:
    if depth > 32:
        raise ThriftError("Thrift value nested too deeply", PROTOCOL_ERROR)
    if ttype in _FIXED:
        fmt = _FIXED[ttype]
        return struct.unpack(fmt, _read_exact(f, struct.calcsize(fmt)))[0]
    if ttype == STRING:
        (n,) = struct.unpack(">i", _read_exact(f, 4))
        if n < 0 or n > 1 << 26:
            raise ThriftError(f"bad Thrift string length {n}", PROTOCOL_ERROR)
        return _read_exact(f, n)
    if ttype == STRUCT:
        out: dict[int, Any] = {}
        while True:
            (ft,) = struct.unpack(">b", _read_exact(f, 1))
            if ft == STOP:
                return out
            (fid,) = struct.unpack(">h", _read_exact(f, 2))
            out[fid] = _read_value(f, ft, depth + 1)
    if ttype in (LIST, SET):
        et, n = struct.unpack(">bi", _read_exact(f, 5))
        return [_read_value(f, et, depth + 1) for _ in range(max(n, 0))]
    if ttype == MAP:
        kt, vt, n = struct.unpack(">bbi", _read_exact(f, 6))
        return {_read_value(f, kt, depth + 1): _read_value(f, vt, depth + 1) for _ in range(max(n, 0))}
    raise ThriftError(f"unknown Thrift type {ttype}", PROTOCOL_ERROR)


def _string(b: bytes | str) -> bytes:
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">i", len(b)) + b


def _fields(fields: list[tuple[int, int, Any]]) -> bytes:
    """A struct body: [(field id, type, value)] (only scalar and string types)."""
    out = []
    for fid, ftype, value in fields:
        out.append(struct.pack(">bh", ftype, fid))
        out.append(_string(value) if ftype == STRING else struct.pack(_FIXED[ftype], value))
    out.append(b"\x00")
    return b"".join(out)


def _message(name: str, mtype: int, seqid: int, body: bytes) -> bytes:
    return struct.pack(">I", VERSION_1 | mtype) + _string(name) + struct.pack(">i", seqid) + body


def _read_message(f: BinaryIO) -> tuple[str, int, int, dict[int, Any]]:
    (head,) = struct.unpack(">i", _read_exact(f, 4))
    if head < 0:
        if (head & 0xFFFF0000) != VERSION_1:
            raise ThriftError("bad Thrift protocol version", PROTOCOL_ERROR)
        mtype = head & 0xFF
        name = _read_value(f, STRING)
    else:  # old, non-strict encoding: the name comes first
        name = _read_exact(f, head)
        (mtype,) = struct.unpack(">b", _read_exact(f, 1))
    (seqid,) = struct.unpack(">i", _read_exact(f, 4))
    return name.decode("utf-8", "replace"), mtype, seqid, _read_value(f, STRUCT)


# ---------------------------------------------------------------------------- server

# method -> (argument field ids in order, result type)
_QUEUE_METHODS: dict[str, tuple[tuple[int, ...], int]] = {
    "set_egress_priority_queue_depth": ((1, 2, 3), I32),
    "set_egress_queue_depth": ((1, 2), I32),
    "set_all_egress_queue_depths": ((1,), I32),
    "set_egress_priority_queue_rate": ((1, 2, 3), I32),
    "set_egress_queue_rate": ((1, 2), I32),
    "set_all_egress_queue_rates": ((1,), I32),
    "get_time_elapsed_us": ((), I64),
    "get_time_since_epoch_us": ((), I64),
}


class ThriftServer:
    """Serves the queue-configuration subset of bmv2's Thrift interface for one switch."""

    def __init__(self, port: int, switch: Any, config: Callable[[], bytes | None],
                 host: str = "127.0.0.1") -> None:
        self.switch = switch
        self.config = config              # () -> the running bmv2 JSON, or None
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, name="thrift", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="thrift-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            while True:
                try:
                    name, mtype, seqid, args = _read_message(f)
                except (EOFError, OSError):
                    return
                except ThriftError as e:
                    log.warning("Thrift: %s; closing the connection", e)
                    return
                service, _, method = name.rpartition(":")
                try:
                    rtype, value = self._call(service, method, args)
                    body = _fields([(0, rtype, value)])
                    reply = _message(method, REPLY, seqid, body)
                except Exception as e:  # the peer gets an answer, the server keeps running
                    err = e if isinstance(e, ThriftError) else ThriftError(f"{method}: internal error: {e}")
                    if err is not e:
                        log.exception("Thrift %s failed", name)
                    log.warning("Thrift %s: %s", name, err)
                    reply = _message(method, EXCEPTION, seqid, _fields([(1, STRING, str(err)), (2, I32, err.kind)]))
                if mtype == ONEWAY:
                    continue
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    def _call(self, service: str, method: str, args: dict[int, Any]) -> tuple[int, Any]:
        if service == "standard" and method in ("bm_get_config", "bm_get_config_md5"):
            cfg = self.config() or b""
            return STRING, (cfg if method == "bm_get_config" else hashlib.md5(cfg).digest())
        if service not in ("simple_switch", "") or method not in _QUEUE_METHODS:
            raise ThriftError(f"p4tap-softswitch does not implement Thrift method {service}:{method} "
                              "(only egress queue depth and rate; use P4Runtime for the rest)", UNKNOWN_METHOD)
        ids, rtype = _QUEUE_METHODS[method]
        try:
            a = [args[i] for i in ids]
        except KeyError as e:
            raise ThriftError(f"{method}: argument {e.args[0]} missing", PROTOCOL_ERROR) from None
        sw = self.switch
        if method == "get_time_elapsed_us":
            return rtype, sw._ts()
        if method == "get_time_since_epoch_us":
            return rtype, int(time.time() * 1_000_000)
        buffers = sw.buffers
        try:
            with sw.lock:
                if method == "set_egress_priority_queue_depth":
                    buffers.set_capacity(a[2], port=a[0], priority=a[1])
                elif method == "set_egress_queue_depth":
                    buffers.set_capacity(a[1], port=a[0])
                elif method == "set_all_egress_queue_depths":
                    buffers.set_capacity(a[0])
                elif method == "set_egress_priority_queue_rate":
                    buffers.set_rate(a[2], port=a[0], priority=a[1])
                elif method == "set_egress_queue_rate":
                    buffers.set_rate(a[1], port=a[0])
                else:
                    buffers.set_rate(a[0])
        except QueueError as e:
            raise ThriftError(f"{method}: {e}") from None
        log.info("Thrift %s%s", method, tuple(a))
        return rtype, 0


# ---------------------------------------------------------------------------- client


class ThriftClient:
    """A minimal client for bmv2's multiplexed Thrift services (binary protocol)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self._seq = 0

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, service: str, method: str, args: list[tuple[int, int, Any]]) -> Any:
        """Call ``service:method`` with [(field id, type, value)]; its result (field 0)."""
        self._seq += 1
        self.sock.sendall(_message(f"{service}:{method}", CALL, self._seq, _fields(args)))
        _name, mtype, _seqid, result = _read_message(self.f)
        if mtype == EXCEPTION:
            raise ThriftError(result.get(1, b"").decode("utf-8", "replace"), result.get(2, 0))
        if 0 not in result and result:
            raise ThriftError(f"{method} raised {result}")
        return result.get(0)

    # the queue calls of simple_switch_CLI's set_queue_depth / set_queue_rate

    def set_queue_depth(self, depth: int, port: int | None = None, priority: int | None = None) -> None:
        if port is None:
            self.call("simple_switch", "set_all_egress_queue_depths", [(1, I32, depth)])
        elif priority is None:
            self.call("simple_switch", "set_egress_queue_depth", [(1, I32, port), (2, I32, depth)])
        else:
            self.call("simple_switch", "set_egress_priority_queue_depth",
                      [(1, I32, port), (2, I32, priority), (3, I32, depth)])

    def set_queue_rate(self, pps: int, port: int | None = None, priority: int | None = None) -> None:
        if port is None:
            self.call("simple_switch", "set_all_egress_queue_rates", [(1, I64, pps)])
        elif priority is None:
            self.call("simple_switch", "set_egress_queue_rate", [(1, I32, port), (2, I64, pps)])
        else:
            self.call("simple_switch", "set_egress_priority_queue_rate",
                      [(1, I32, port), (2, I32, priority), (3, I64, pps)])
