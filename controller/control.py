"""The running controller's local API: JSON lines over a Unix socket.

Only one controller may be primary for a switch, so the CLI does not talk
P4Runtime itself: it asks the running controller. The socket is owner-only
(0600 in a 0700 directory), and the kernel's peer credentials name the
caller in the audit log.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import socketserver
import struct
import threading
from pathlib import Path
from typing import Any

from controller import codec, ets
from controller.audit import AuditError
from controller.model import InterceptError
from controller.service import Controller, ProvisionError
from controller.store import StoreError
from controller.switch import SwitchError

log = logging.getLogger("p4tap.control")


#: the longest request line the server reads (1 MiB)
MAX_REQUEST = 1 << 20


class ControlError(Exception):
    """The controller refused a request, or could not be reached."""


def _peer(sock: socket.socket) -> str:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return f"cli:{user} (pid {pid})"


class _Handler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        actor = _peer(self.request)
        try:
            request = self._read_request(actor)
            result = self.server.dispatch(request, actor)
            reply = {"ok": True, "result": result}
        except KeyError as error:
            reply = {"ok": False, "error": f"request lacks field {error}"}
        except (InterceptError, ProvisionError, SwitchError, ControlError, ValueError) as error:
            reply = {"ok": False, "error": str(error) or type(error).__name__}
        except (StoreError, AuditError, OSError) as error:  # a full or failing disk: say so, no traceback
            log.error("request of %s failed: %s", actor, error)
            reply = {"ok": False, "error": f"the controller's state could not be written: {error}"}
        except Exception as error:  # every request gets an answer, whatever went wrong
            log.exception("request of %s failed", actor)
            reply = {"ok": False, "error": f"internal error: {type(error).__name__}: {error}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")

    def _read_request(self, actor: str) -> dict[str, Any]:
        """One line of JSON naming an object; anything else is refused, and the
        refusal audited, before it can reach the controller."""
        line = self.rfile.readline(MAX_REQUEST + 1)
        reason = None
        if len(line) > MAX_REQUEST:
            reason = f"request longer than {MAX_REQUEST} bytes"
            while line and not line.endswith(b"\n"):  # discard the rest, so the sender reads the answer
                line = self.rfile.readline(1 << 16)
        else:
            try:
                request = json.loads(line)
            except ValueError as error:
                reason = f"request is not JSON: {error}"
            else:
                if not isinstance(request, dict):
                    reason = f"request is a JSON {type(request).__name__}, not an object"
                elif request.get("op") == "add" and not isinstance(request.get("intercept"), dict):
                    reason = "add request lacks an intercept object"
        if reason is not None:
            self._refuse(actor, reason)
        return request

    def _refuse(self, actor: str, reason: str, **detail: Any) -> None:
        """Audit the refusal (if the disk lets it) and refuse: the requester is told either way."""
        unrecorded = self.server.controller.record_refusal(actor, reason, **detail)
        raise ControlError(reason if unrecorded is None else f"{reason} ({unrecorded})")


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, controller: Controller) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Bound and listening under a name of its own, then renamed into
        # place: a client that sees the socket can connect to it (between
        # bind and listen it would be refused, which a busy machine makes
        # last long enough for a client to meet).
        pending = path.with_name(f".{path.name}.{os.getpid()}")
        pending.unlink(missing_ok=True)
        old_umask = os.umask(0o177)
        try:
            super().__init__(str(pending), _Handler)
        finally:
            os.umask(old_umask)
        os.replace(pending, path)
        self.path = path
        self.controller = controller
        self._thread = threading.Thread(target=self.serve_forever, name="p4tap-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)

    def _check_add(self, content_id: int, streams: list, replace: bool, actor: str) -> None:
        """Refuse (and audit) an add that would install nothing on the switch, or
        silently replace another intercept: the socket's operator must say so
        (`replace`); the SNMP agent, which builds intercepts row by row, does not
        come this way."""
        reason = None
        if not any(s.enabled for s in streams):
            reason = f"intercept {content_id} has no enabled stream: nothing would be intercepted"
        elif not replace and self.controller.store.get(content_id) is not None:
            reason = f"intercept {content_id} exists: give replace (tap add --replace) to modify it"
        if reason is not None:
            unrecorded = self.controller.record_refusal(actor, reason, content_ids=[content_id])
            raise ControlError(reason if unrecorded is None else f"{reason} ({unrecorded})")

    def dispatch(self, request: dict[str, Any], actor: str) -> Any:
        c, op = self.controller, request.get("op")
        if op == "list":
            refused = c.refusals()
            return [dict(codec.intercept_to_dict(m, s), switches=sw, refused=refused.get(m.content_id, {}))
                    for m, s, sw in c.intercepts()]
        if op == "add":
            mediation, streams = codec.intercept_from_dict(request["intercept"])
            with c.lock:
                self._check_add(mediation.content_id, streams, bool(request.get("replace")), actor)
                c.provision(mediation, streams, actor, request.get("switches"))
            return {"content_id": mediation.content_id}
        if op == "remove":
            if not c.remove(int(request["content_id"]), actor):
                raise ControlError(f"no intercept {request['content_id']}")
            return {"content_id": request["content_id"]}
        if op == "counters":
            counters = c.counters(int(request["content_id"]))
            if not counters:
                raise ControlError(f"no intercept {request['content_id']}")
            return {str(k): vars(v) for k, v in counters.items()}
        if op == "reconcile":
            return {name: c.reconcile(name, actor).summary() for name in c.switches}
        if op == "status":
            return {name: {"address": s.config.address, "connected": bool(s.conn and s.conn.connected),
                           "primary": bool(s.conn and s.conn.is_primary), "entries": len(s.believed)}
                    for name, s in c.switches.items()}
        if op in ("ets-show", "ets-set"):
            name = request.get("switch")
            if name not in c.switches:
                raise ControlError(f"no switch named {name!r} (known: {sorted(c.switches)})")
            if op == "ets-set":
                current = c.switches[name].config.topology.ets
                merged = (ets.to_dict(current) if current is not None else {}) | dict(request.get("changes", {}))
                try:
                    cfg = ets.from_dict(merged, f"switch {name!r} ets")
                except ets.EtsConfigError as error:
                    raise ControlError(str(error)) from None
                c.set_ets(name, cfg, actor)
            cfg = c.switches[name].config.topology.ets
            return {"config": None if cfg is None else ets.to_dict(cfg),
                    "counters": {k: {"packets": p, "octets": o} for k, (p, o) in c.ets_counters(name).items()}}
        raise ControlError(f"unknown operation {op!r}")


def request(path: Path, payload: dict[str, Any], timeout: float = 60.0) -> Any:
    """Send one request to the running controller and return its result."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"no controller is running at {path} (start one: p4tap controller run --config FILE)") from None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (the control socket is owner-only)") from None
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(payload).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line:
        raise ControlError("the controller closed the connection without answering")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "refused"))
    return reply["result"]
