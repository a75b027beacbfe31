"""The running controller's local API: JSON lines over a Unix socket.

Only one controller may be primary for a switch, so the CLI does not talk
P4Runtime itself: it asks the running controller. The socket is owner-only
(0600 in a 0700 directory), and the kernel's peer credentials name the
caller in the audit log.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import socketserver
import struct
import threading
from pathlib import Path
from typing import Any

from controller import codec, ets
from controller.model import InterceptError
from controller.service import Controller, ProvisionError
from controller.switch import SwitchError


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
        line = self.rfile.readline(1 << 20)
        try:
            request = json.loads(line)
            result = self.server.dispatch(request, _peer(self.request))
            reply = {"ok": True, "result": result}
        except (InterceptError, ProvisionError, SwitchError, ControlError, KeyError, ValueError) as error:
            reply = {"ok": False, "error": str(error) or type(error).__name__}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, controller: Controller) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        old_umask = os.umask(0o177)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old_umask)
        self.path = path
        self.controller = controller
        self._thread = threading.Thread(target=self.serve_forever, name="p4tap-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)

    def dispatch(self, request: dict[str, Any], actor: str) -> Any:
        c, op = self.controller, request.get("op")
        if op == "list":
            refused = c.refusals()
            return [dict(codec.intercept_to_dict(m, s), switches=sw, refused=refused.get(m.content_id, {}))
                    for m, s, sw in c.intercepts()]
        if op == "add":
            mediation, streams = codec.intercept_from_dict(request["intercept"])
            c.provision(mediation, streams, actor, request.get("switches"))
            return {"content_id": mediation.content_id}
        if op == "remove":
            if not c.remove(int(request["content_id"]), actor):
                raise ControlError(f"no intercept {request['content_id']}")
            return {"content_id": request["content_id"]}
        if op == "counters":
            counters = c.counters(int(request["content_id"]))
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
