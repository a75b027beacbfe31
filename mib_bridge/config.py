"""The agent's config file (TOML): where it listens, its SNMPv3 users, VACM
groups and views, and where notifications go.

    [agent]
    listen = ["127.0.0.1:161", "[::1]:161"]   # UDP, IPv4 and IPv6; port 0 = any free port
    # engine_id = "80001f8804703474617031"      # hex; default: a new one each start
    # sys_name = "iap-1"                        # default: this host's name, as net-snmp's agent says it
    # sys_descr = "..."                         # sysDescr; default a neutral "SNMPv3 agent": an IAP must
    #                                           # not tell anyone it can intercept (RFC 3924 5)
    # sys_object_id = "1.3.6.1.4.1.9.1.516"     # sysObjectID; default 0.0 (none)
    debug_age_minutes = 1440                    # cTap2DebugAge
    debug_max_entries = 256                     # cTap2DebugMaxEntries
    # switches = ["access1"]                    # where new intercepts go (default: every switch)
    # max_message_size = 65507                  # snmpEngineMaxMessageSize, 484..65507: larger datagrams
    #                                           # are dropped unread (RFC 3417 3.2), and answers fit it

    [[view]]
    name = "tap"
    include = ["1.3.6.1.4.1.9.9.399", "1.3.6.1.4.1.9.9.394", "1.3.6.1.2.1.1"]
    exclude = []

    [[group]]
    name = "li"
    lawful_intercept = true        # only such groups may ever reach .399 and .394
    security_level = "authPriv"    # the least a request must have (authPriv or authNoPriv)
    read_view = "tap"
    write_view = "tap"
    notify_view = "tap"

    [[user]]
    name = "md1"
    group = "li"
    auth_protocol = "SHA-256"      # SHA (HMAC-SHA-96, SHA-1), SHA-224, SHA-256, SHA-384, SHA-512; MD5 (weak)
    auth_key = "at least 8 characters"
    priv_protocol = "AES"          # AES (128), AES-192, AES-256 (net-snmp's AES192/AES256),
    priv_key = "at least 8 characters"   # AES-192-C, AES-256-C (Cisco's key extension); DES, 3DES (weak)
    # allow_weak_protocols = true  # needed to name MD5, DES or 3DES; the agent warns at start
    # net-snmp's and Cisco's spellings are taken too (SHA1, SHA-1, usmHMACSHAAuthProtocol, AES128, 3DES-EDE...)

    [[notify]]
    target = "127.0.0.1:162"       # or "[2001:db8::1]:162"
    user = "md1"                   # must be in a lawful_intercept group
    type = "inform"                # or "trap"
    timeout = 1.5                  # seconds before an inform is sent again
    retries = 3

The file holds keys: it must be readable by its owner only (mode 0600),
else it is refused. Keys never appear in a log, a repr or an error message.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.toml_fields import ConfigError, Endpoint, endpoint, read
from controller.toml_fields import get as _get
from controller.toml_fields import only as _only
from mib_bridge import oids
from mib_bridge.oids import OID
from snmpv3 import protocols

DEFAULT_SYS_DESCR = "SNMPv3 agent"  # says nothing of intercepts (RFC 3924 5)
SECURITY_LEVELS = {"authNoPriv": 2, "authPriv": 3}
MIN_KEY = 8  # RFC 3414 11.2: passphrases shorter than 8 octets are refused


@dataclass(frozen=True)
class View:
    name: str
    include: tuple[OID, ...]
    exclude: tuple[OID, ...] = ()


@dataclass(frozen=True)
class Group:
    name: str
    security_level: str
    read_view: str | None
    write_view: str | None
    notify_view: str | None
    lawful_intercept: bool = False

    @property
    def level(self) -> int:
        return SECURITY_LEVELS[self.security_level]


@dataclass(frozen=True)
class User:
    name: str
    group: str
    auth_protocol: str
    auth_key: str = field(repr=False)
    priv_protocol: str | None = None
    priv_key: str | None = field(default=None, repr=False)
    allow_weak_protocols: bool = False

    @property
    def weak_protocols(self) -> tuple[str, ...]:
        """The weak protocols this user was allowed to name, e.g. ("auth_protocol MD5",)."""
        return protocols.weak(self.auth_protocol, self.priv_protocol)

    def weak_note(self) -> str | None:
        """What the agent's start and `--check` say of a user of weak protocols."""
        if not self.weak_protocols:
            return None
        return f"user {self.name!r} uses {' and '.join(self.weak_protocols)} (weak; allowed by {protocols.OPT_IN})"


@dataclass(frozen=True)
class NotifyTarget:
    target: Endpoint
    user: str
    type: str = "inform"
    timeout: float = 1.5
    retries: int = 3


@dataclass(frozen=True)
class AgentConfig:
    listen: tuple[Endpoint, ...]
    users: tuple[User, ...]
    groups: tuple[Group, ...]
    views: tuple[View, ...]
    notify: tuple[NotifyTarget, ...] = ()
    engine_id: bytes | None = None
    sys_name: str = field(default_factory=socket.gethostname)  # a product name would tell what the IAP is
    sys_location: str = ""
    sys_contact: str = ""
    sys_descr: str = DEFAULT_SYS_DESCR
    sys_object_id: OID = (0, 0)
    debug_age_minutes: int = 1440
    debug_max_entries: int = 256
    switches: tuple[str, ...] | None = None
    max_message_size: int = 65507

    def group_of(self, user: str) -> Group | None:
        for u in self.users:
            if u.name == user:
                return next(g for g in self.groups if g.name == u.group)
        return None


def _oids(values: list[Any], where: str) -> tuple[OID, ...]:
    try:
        return tuple(oids.parse(str(v)) for v in values)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _user(raw: dict[str, Any], i: int) -> User:
    where = f"[[user]] #{i + 1}"
    _only(raw, {"name", "group", "auth_protocol", "auth_key", "priv_protocol", "priv_key", protocols.OPT_IN}, where)
    name = _get(raw, "name", str, where)
    where = f"user {name!r}"
    auth = _get(raw, "auth_protocol", str, where)
    priv = _get(raw, "priv_protocol", str, where, None)
    allow_weak = _get(raw, protocols.OPT_IN, bool, where, False)
    refused = protocols.check(auth, priv, allow_weak, where)
    if refused is not None:
        raise ConfigError(refused)
    auth, priv = protocols.names(auth, priv)
    auth_key = _get(raw, "auth_key", str, where)
    priv_key = _get(raw, "priv_key", str, where, None)
    if (priv is None) != (priv_key is None):
        raise ConfigError(f"{where}: priv_protocol and priv_key go together")
    for label, key in (("auth_key", auth_key), ("priv_key", priv_key)):
        if key is not None and len(key.encode()) < MIN_KEY:
            raise ConfigError(f"{where}: {label} is shorter than {MIN_KEY} characters")
    return User(name, _get(raw, "group", str, where), auth, auth_key, priv, priv_key, allow_weak)


def parse(raw: dict[str, Any], source: str = "config") -> AgentConfig:
    _only(raw, {"agent", "view", "group", "user", "notify"}, source)
    agent = _get(raw, "agent", dict, source, {})
    _only(agent, {"listen", "engine_id", "sys_name", "sys_location", "sys_contact", "sys_descr", "sys_object_id",
                  "debug_age_minutes", "debug_max_entries", "switches", "max_message_size"}, "[agent]")
    listen = tuple(endpoint(str(e), "[agent] listen")
                   for e in _get(agent, "listen", list, "[agent]", ["127.0.0.1:161", "[::1]:161"]))
    if not listen:
        raise ConfigError("[agent] listen: give at least one ADDRESS:PORT")
    engine_id = _get(agent, "engine_id", str, "[agent]", None)
    if engine_id is not None:
        try:
            engine_id = bytes.fromhex(engine_id)
        except ValueError:
            raise ConfigError("[agent] engine_id must be hex") from None
        if not 5 <= len(engine_id) <= 32:
            raise ConfigError("[agent] engine_id must be 5 to 32 octets")
    for key in ("debug_age_minutes", "debug_max_entries"):
        if not 1 <= _get(agent, key, int, "[agent]", 1) <= 2**31 - 1:
            raise ConfigError(f"[agent] {key} must be at least 1")
    switches = _get(agent, "switches", list, "[agent]", None)
    max_message_size = _get(agent, "max_message_size", int, "[agent]", 65507)
    if not 484 <= max_message_size <= 65507:  # RFC 3417 3.2: at least 484; a UDP datagram holds at most 65507
        raise ConfigError("[agent] max_message_size must be 484 to 65507 octets")
    sys_descr = _get(agent, "sys_descr", str, "[agent]", DEFAULT_SYS_DESCR)
    if len(sys_descr.encode()) > 255:
        raise ConfigError("[agent] sys_descr: at most 255 octets (DisplayString)")
    sys_object_id = _oids([_get(agent, "sys_object_id", str, "[agent]", "0.0")], "[agent] sys_object_id")[0]

    views = []
    for i, v in enumerate(_get(raw, "view", list, source, [])):
        where = f"[[view]] #{i + 1}"
        _only(v, {"name", "include", "exclude"}, where)
        views.append(View(_get(v, "name", str, where), _oids(_get(v, "include", list, where), where),
                          _oids(_get(v, "exclude", list, where, []), where)))
    view_names = {v.name for v in views}

    groups = []
    for i, g in enumerate(_get(raw, "group", list, source, [])):
        where = f"[[group]] #{i + 1}"
        _only(g, {"name", "lawful_intercept", "security_level", "read_view", "write_view", "notify_view"}, where)
        level = _get(g, "security_level", str, where, "authPriv")
        if level not in SECURITY_LEVELS:
            raise ConfigError(f"{where}: security_level must be authPriv or authNoPriv")
        group = Group(_get(g, "name", str, where), level, _get(g, "read_view", str, where, None),
                      _get(g, "write_view", str, where, None), _get(g, "notify_view", str, where, None),
                      _get(g, "lawful_intercept", bool, where, False))
        for view in (group.read_view, group.write_view, group.notify_view):
            if view is not None and view not in view_names:
                raise ConfigError(f"group {group.name!r}: no [[view]] named {view!r}")
        groups.append(group)
    group_names = {g.name for g in groups}

    users = [_user(u, i) for i, u in enumerate(_get(raw, "user", list, source, []))]
    for u in users:
        if u.group not in group_names:
            raise ConfigError(f"user {u.name!r}: no [[group]] named {u.group!r}")
        group = next(g for g in groups if g.name == u.group)
        if group.level == 3 and u.priv_protocol is None:
            raise ConfigError(f"user {u.name!r}: group {group.name!r} needs authPriv, so the user needs a priv_key")
    if len({u.name for u in users}) != len(users):
        raise ConfigError("user names must be unique")

    notify = []
    for i, n in enumerate(_get(raw, "notify", list, source, [])):
        where = f"[[notify]] #{i + 1}"
        _only(n, {"target", "user", "type", "timeout", "retries"}, where)
        target = NotifyTarget(endpoint(_get(n, "target", str, where), where), _get(n, "user", str, where),
                              _get(n, "type", str, where, "inform"), float(_get(n, "timeout", (int, float), where, 1.5)),
                              _get(n, "retries", int, where, 3))
        if target.type not in ("inform", "trap"):
            raise ConfigError(f"{where}: type must be inform or trap")
        user = next((u for u in users if u.name == target.user), None)
        if user is None or not next(g for g in groups if g.name == user.group).lawful_intercept:
            raise ConfigError(f"{where}: user {target.user!r} is not a user of a lawful_intercept group")
        notify.append(target)

    return AgentConfig(
        listen=listen, users=tuple(users), groups=tuple(groups), views=tuple(views), notify=tuple(notify),
        engine_id=engine_id, sys_name=_get(agent, "sys_name", str, "[agent]", socket.gethostname()),
        sys_location=_get(agent, "sys_location", str, "[agent]", ""),
        sys_contact=_get(agent, "sys_contact", str, "[agent]", ""),
        sys_descr=sys_descr, sys_object_id=sys_object_id,
        debug_age_minutes=_get(agent, "debug_age_minutes", int, "[agent]", 1440),
        debug_max_entries=_get(agent, "debug_max_entries", int, "[agent]", 256),
        switches=tuple(str(s) for s in switches) if switches else None, max_message_size=max_message_size,
    )


def one_user_toml(listen: Sequence[str], user: str, auth_key: str, priv_key: str, *, sys_name: str = "iap-1",
                  notify: Sequence[str] = ()) -> str:
    """The text of an agent config with one lawful-intercept user (SHA-256,
    AES, authPriv) who may read, write and be told about the TAP-MIBs and the
    system group, and informs to each `notify` address ("ADDRESS:PORT"). What
    the demo and the benchmarks run; write it to a file of mode 0600."""
    q = json.dumps  # a JSON string or list of strings is a valid TOML value
    tap = ["1.3.6.1.4.1.9.9.399", "1.3.6.1.4.1.9.9.394", "1.3.6.1.2.1.1"]
    lines = ["[agent]", f"listen = {q(list(listen))}", f"sys_name = {q(sys_name)}", "",
             "[[view]]", 'name = "tap"', f"include = {q(tap)}", "",
             "[[group]]", 'name = "li"', "lawful_intercept = true", 'security_level = "authPriv"',
             'read_view = "tap"', 'write_view = "tap"', 'notify_view = "tap"', "",
             "[[user]]", f"name = {q(user)}", 'group = "li"', 'auth_protocol = "SHA-256"', f"auth_key = {q(auth_key)}",
             'priv_protocol = "AES"', f"priv_key = {q(priv_key)}"]
    for target in notify:
        lines += ["", "[[notify]]", f"target = {q(target)}", f"user = {q(user)}", 'type = "inform"']
    return "\n".join(lines) + "\n"


def load(path: Path) -> AgentConfig:
    """Read and check the config; refuse a file others may read (it holds keys)."""
    return parse(read(path, holds_keys=True), str(path))
