"""The mediation device's config file (TOML): where content arrives, the
IAP's SNMPv3 agent and the MD's keys for it, the intercepts the MD keeps,
and the agencies it hands content over to.

    [content]                            # interface f
    listen = ["203.0.113.10:7000", "[2001:db8:ff::10]:7000"]
    out_dir = "captures"                 # one cccid-N.pcap per intercept (relative to this file)
    queue = 65536                        # packets waiting for the disk before they are counted as not written
    # status_file = "captures/md-status.json"   # what `p4tap md status` reads

    [iap]                                # interface d: the IAP's SNMPv3 agent
    address = "198.51.100.1:161"
    user = "md1"
    auth_protocol = "SHA-256"            # SHA (HMAC-SHA-96, SHA-1), SHA-224, SHA-256, SHA-384, SHA-512; MD5 (weak)
    auth_key = "at least 8 characters"
    priv_protocol = "AES"                # AES, AES-192, AES-256, AES-192-C, AES-256-C; DES, 3DES (weak)
    priv_key = "at least 8 characters"
    # allow_weak_protocols = true        # needed to name MD5, DES or 3DES (as in the agent's snmp.toml)
    # net-snmp's and Cisco's spellings are taken too (SHA1, SHA-1, usmHMACSHAAuthProtocol, AES128, 3DES-EDE...)
    timeout = 2.0                        # seconds per SNMP request
    retries = 1
    audit_interval = 5.0                 # seconds between audits of the IAP's stream table

    [informs]                            # the agent's informs (ciscoTap2MIBActive, ...TimedOut)
    listen = "198.51.100.10:162"         # authenticated with the [iap] user and keys

    [[intercept]]                        # kept by `p4tap md listen`, provisioned by `p4tap md provision`
    content_id = 4242                    # the CCCID
    md = "203.0.113.10:7000"             # where the IAP sends the copies
    subject = "192.0.2.10"               # all traffic from and to it (two streams); or filters:
    # filters = [{ src = "192.0.2.10/32", protocol = 17, dst_ports = [5004, 5004] }]  (and src_ports)
    lifetime = 600                       # seconds; the MD refreshes the Timeout while it keeps it
    dscp = 34

    [[agency]]                           # HI3: who gets which CCCIDs
    name = "lea-a"
    cccids = [4242]
    file = "lea-a"                       # a directory; or udp = "HOST:PORT", or tcp = "HOST:PORT",
                                         # or hi3 = "HOST:PORT" (ETSI TS 102 232: mediation/etsi_config.py)

    [signalling], [[radius_server]], [[sip_server]], [[identity_target]]:
    warrants on a person rather than an address, followed through the
    operator's signalling (described in mediation/radius_config.py and
    mediation/sip_config.py).

The file holds SNMPv3 keys: with an [iap] section it must be readable by its
owner only (mode 0600), else it is refused. Keys never appear in a repr or
an error message. Every mistake names the section and key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.toml_fields import ConfigError, Endpoint, read
from controller.toml_fields import endpoint as parse_endpoint
from controller.toml_fields import get as _get
from controller.toml_fields import only as _only
from mediation.etsi_config import KEYS as ETSI_KEYS
from mediation.etsi_config import etsi_agency, targets_from
from mediation.etsi_delivery import EtsiAgency
from mediation.stream_filter import Filter
from snmpv3 import protocols

MIN_KEY = 8  # RFC 3414 11.2
MAX_CONTENT_ID = 2**31 - 1


@dataclass(frozen=True)
class IapSettings:
    address: Endpoint
    user: str
    auth_key: str = field(repr=False)
    priv_key: str | None = field(default=None, repr=False)
    auth_protocol: str = "SHA-256"
    priv_protocol: str = "AES"
    timeout: float = 2.0
    retries: int = 1
    audit_interval: float = 5.0


@dataclass(frozen=True)
class InterceptSpec:
    """One intercept the MD wants: a mediation row and one stream per filter."""

    content_id: int
    md: Endpoint
    filters: tuple[Filter, ...]
    lifetime: float = 600.0
    dscp: int = 34
    until: datetime | None = None  # a warrant's end: the Timeout never goes past it, and the keeper removes it then
    derived_from: str = ""  # "": the config's; else what made it (a signalling tap, a target's session)


@dataclass(frozen=True)
class AgencySpec:
    name: str
    cccids: frozenset[int]
    file: Path | None = None
    udp: Endpoint | None = None
    tcp: Endpoint | None = None
    etsi: EtsiAgency | None = None


@dataclass(frozen=True)
class MdConfig:
    listen: tuple[Endpoint, ...]
    out_dir: Path
    status_file: Path
    queue: int = 65536
    iap: IapSettings | None = None
    informs: Endpoint | None = None
    intercepts: tuple[InterceptSpec, ...] = ()
    agencies: tuple[AgencySpec, ...] = ()
    signalling: Any = None  # radius_config.SignallingSettings: where signalling copies arrive
    radius_servers: tuple = ()  # radius_config.RadiusServer: each a standing signalling tap
    identity_targets: tuple = ()  # radius_iri.IdentityTarget: warrants on a RADIUS and/or SIP identity
    sip_servers: tuple = ()  # sip_config.SipServer: each a standing signalling tap

    def signalling_intercepts(self) -> tuple[InterceptSpec, ...]:
        """The standing signalling taps: each RADIUS and SIP server's traffic, under its own CCCID, to the IRI
        function."""
        if self.signalling is None:
            return ()
        to = self.signalling.deliver_to or self.signalling.listen
        return tuple(InterceptSpec(s.content_id, to, s.filters(), self.signalling.lifetime,
                                   derived_from=f"{kind} server {s.address} (signalling)")
                     for kind, servers in (("RADIUS", self.radius_servers), ("SIP", self.sip_servers))
                     for s in servers)

    def intercept(self, content_id: int) -> InterceptSpec | None:
        return next((i for i in self.intercepts if i.content_id == content_id), None)


def subject_filters(subject: str, where: str = "subject") -> tuple[Filter, Filter]:
    """All traffic of one address: the address as source, and as destination."""
    try:
        address = ipaddress.ip_address(subject)
    except ValueError:
        raise ConfigError(f"{where}: {subject!r} is not an IP address") from None
    prefix = f"{address}/{address.max_prefixlen}"
    return Filter(src=prefix), Filter(dst=prefix)


def _prefix(value: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not an address or prefix") from None


def _filter(raw: dict[str, Any], where: str) -> Filter:
    _only(raw, {"src", "dst", "protocol", "dst_ports", "src_ports"}, where)
    src = _prefix(raw["src"], where) if "src" in raw else None
    dst = _prefix(raw["dst"], where) if "dst" in raw else None
    if src is None and dst is None:
        raise ConfigError(f"{where}: give src, dst or both")
    if src and dst and ipaddress.ip_network(src).version != ipaddress.ip_network(dst).version:
        raise ConfigError(f"{where}: src and dst are of different IP versions")
    protocol = _get(raw, "protocol", int, where, -1)
    if not -1 <= protocol <= 255:
        raise ConfigError(f"{where}: protocol must be 0..255 (or -1: any)")
    ports = {}
    for name in ("dst_ports", "src_ports"):
        ports[name] = tuple(_get(raw, name, list, where, [0, 65535]))
        low_high = ports[name]
        if len(low_high) != 2 or not all(isinstance(p, int) and 0 <= p <= 65535 for p in low_high) \
                or low_high[0] > low_high[1]:
            raise ConfigError(f"{where}: {name} must be [MIN, MAX] with 0 <= MIN <= MAX <= 65535")
    return Filter(src=src, dst=dst, protocol=protocol, **ports)


def _intercept(raw: dict[str, Any], i: int) -> InterceptSpec:
    where = f"[[intercept]] #{i + 1}"
    _only(raw, {"content_id", "md", "subject", "filters", "lifetime", "dscp"}, where)
    content_id = _get(raw, "content_id", int, where)
    where = f"intercept {content_id}"
    if not 1 <= content_id <= MAX_CONTENT_ID:
        raise ConfigError(f"{where}: content_id must be 1..{MAX_CONTENT_ID}")
    if ("subject" in raw) == ("filters" in raw):
        raise ConfigError(f"{where}: give either subject or filters")
    if "subject" in raw:
        filters = subject_filters(_get(raw, "subject", str, where), f"{where} subject")
    else:
        filters = tuple(_filter(f, f"{where} filters[{n}]") for n, f in enumerate(_get(raw, "filters", list, where)))
        if not filters:
            raise ConfigError(f"{where}: filters is empty")
    lifetime = float(_get(raw, "lifetime", (int, float), where, 600.0))
    if lifetime < 10:
        raise ConfigError(f"{where}: lifetime must be at least 10 seconds")
    dscp = _get(raw, "dscp", int, where, 34)
    if not 0 <= dscp <= 63:
        raise ConfigError(f"{where}: dscp must be 0..63")
    return InterceptSpec(content_id, parse_endpoint(_get(raw, "md", str, where), f"{where} md"), filters,
                         lifetime, dscp)


def _agency(raw: dict[str, Any], i: int, base: Path, out_dir: Path) -> AgencySpec:
    where = f"[[agency]] #{i + 1}"
    _only(raw, {"name", "cccids", "file", "udp", "tcp"} | ETSI_KEYS, where)
    name = _get(raw, "name", str, where)
    where = f"agency {name!r}"
    cccids = _get(raw, "cccids", list, where)
    if not cccids or not all(isinstance(c, int) and 1 <= c <= MAX_CONTENT_ID for c in cccids):
        raise ConfigError(f"{where}: cccids must be a non-empty list of content IDs")
    kinds = [k for k in ("file", "udp", "tcp", "hi3") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of file, udp, tcp, hi3")
    kind = kinds[0]
    if kind == "hi3":
        return AgencySpec(name, frozenset(cccids), etsi=etsi_agency(raw, name, frozenset(cccids), where, base,
                                                                    out_dir))
    stray = sorted(ETSI_KEYS & set(raw))
    if stray:
        raise ConfigError(f"{where}: `{stray[0]}` belongs to an ETSI handover (hi3 = ...)")
    value = _get(raw, kind, str, where)
    if kind == "file":
        return AgencySpec(name, frozenset(cccids), file=base / value)
    return AgencySpec(name, frozenset(cccids), **{kind: parse_endpoint(value, f"{where} {kind}")})


def _iap(raw: dict[str, Any]) -> IapSettings:
    where = "[iap]"
    _only(raw, {"address", "user", "auth_protocol", "auth_key", "priv_protocol", "priv_key", "timeout", "retries",
                "audit_interval", protocols.OPT_IN}, where)
    auth = _get(raw, "auth_protocol", str, where, "SHA-256")
    priv = _get(raw, "priv_protocol", str, where, "AES")
    auth_key = _get(raw, "auth_key", str, where)
    priv_key = _get(raw, "priv_key", str, where, None)
    refused = protocols.check(auth, priv, _get(raw, protocols.OPT_IN, bool, where, False), where)
    if refused is not None:
        raise ConfigError(refused)
    auth, priv = protocols.names(auth, priv)
    for label, key in (("auth_key", auth_key), ("priv_key", priv_key)):
        if key is not None and len(key.encode()) < MIN_KEY:
            raise ConfigError(f"{where}: {label} is shorter than {MIN_KEY} characters")
    interval = float(_get(raw, "audit_interval", (int, float), where, 5.0))
    if interval <= 0:
        raise ConfigError(f"{where}: audit_interval must be positive")
    return IapSettings(parse_endpoint(_get(raw, "address", str, where), f"{where} address"),
                       _get(raw, "user", str, where), auth_key, priv_key, auth, priv,
                       float(_get(raw, "timeout", (int, float), where, 2.0)), _get(raw, "retries", int, where, 1),
                       interval)


def parse(raw: dict[str, Any], base: Path, source: str = "config") -> MdConfig:
    _only(raw, {"content", "iap", "informs", "intercept", "agency", "signalling", "radius_server", "sip_server",
                "identity_target"}, source)
    content = _get(raw, "content", dict, source, {})
    _only(content, {"listen", "out_dir", "queue", "status_file"}, "[content]")
    listen = tuple(parse_endpoint(e, "[content] listen") for e in _get(content, "listen", list, "[content]", []))
    out_dir = base / _get(content, "out_dir", str, "[content]", "captures")
    queue = _get(content, "queue", int, "[content]", 65536)
    if queue < 1:
        raise ConfigError("[content] queue must be at least 1")
    status_file = base / _get(content, "status_file", str, "[content]", str(out_dir / "md-status.json"))
    iap = _iap(_get(raw, "iap", dict, source)) if "iap" in raw else None
    informs = None
    if "informs" in raw:
        table = _get(raw, "informs", dict, source)
        _only(table, {"listen"}, "[informs]")
        if iap is None:
            raise ConfigError("[informs] needs [iap]: informs are authenticated with its user and keys")
        informs = parse_endpoint(_get(table, "listen", str, "[informs]"), "[informs] listen")
    intercepts = tuple(_intercept(r, i) for i, r in enumerate(_get(raw, "intercept", list, source, [])))
    ids = [i.content_id for i in intercepts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: intercept content_ids must be unique, got {ids}")
    if intercepts and iap is None:
        raise ConfigError(f"{source}: [[intercept]] needs [iap] to provision it")
    agencies = tuple(_agency(r, i, base, out_dir) for i, r in enumerate(_get(raw, "agency", list, source, [])))
    agencies = tuple(_with_targets(a, intercepts) for a in agencies)
    names = [a.name for a in agencies]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: agency names must be unique, got {names}")
    interval = iap.audit_interval if iap else 0
    for spec in intercepts:
        if interval * 2 >= spec.lifetime:
            raise ConfigError(f"intercept {spec.content_id}: lifetime {spec.lifetime:g}s is too short for "
                              f"[iap] audit_interval {interval:g}s (the MD refreshes at half the lifetime)")
    sig, servers, sip_servers, targets = _signalling(raw, source, iap, intercepts)
    for target in targets:
        if interval * 2 >= (target.lifetime or 600):
            raise ConfigError(f"identity_target {target.cccid}: lifetime {target.lifetime:g}s is too short for "
                              f"[iap] audit_interval {interval:g}s")
    return MdConfig(listen, out_dir, status_file, queue, iap, informs, intercepts, agencies, sig, servers, targets,
                    sip_servers)


def _signalling(raw: dict[str, Any], source: str, iap: IapSettings | None,
                intercepts: tuple[InterceptSpec, ...]) -> tuple[Any, tuple, tuple, tuple]:
    """[signalling], [[radius_server]], [[sip_server]] and [[identity_target]] (mediation/radius_config.py,
    mediation/sip_config.py), checked together."""
    from mediation import radius_config, sip_config  # they build on this module's errors; imported here

    sig = radius_config.signalling(raw["signalling"]) if "signalling" in raw else None
    servers = tuple(radius_config.radius_server(r, i, needs_content_id=True)
                    for i, r in enumerate(_get(raw, "radius_server", list, source, [])))
    sip_servers = tuple(sip_config.sip_server(r, i, radius_config._content_id)
                        for i, r in enumerate(_get(raw, "sip_server", list, source, [])))
    targets = tuple(radius_config.identity_target(r, i)
                    for i, r in enumerate(_get(raw, "identity_target", list, source, [])))
    if (servers or sip_servers or targets) and sig is None:
        raise ConfigError(f"{source}: [[radius_server]], [[sip_server]] and [[identity_target]] need "
                          "[signalling] listen")
    if (servers or sip_servers or targets) and iap is None:
        raise ConfigError(f"{source}: signalling taps need [iap] to provision them")
    if any(t.by_radius for t in targets) and not servers:
        raise ConfigError(f"{source}: an [[identity_target]] with radius_username or calling_station_id needs a "
                          "[[radius_server]] to learn its sessions from")
    if any(t.sip_user is not None for t in targets) and not sip_servers:
        raise ConfigError(f"{source}: an [[identity_target]] with sip_uri or sip_user needs a [[sip_server]] to "
                          "learn its calls from")
    ids = [i.content_id for i in intercepts] + [s.content_id for s in servers + sip_servers] + \
        [t.cccid for t in targets]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: content_ids of intercepts, radius and sip servers and identity targets must "
                          f"all differ, got {ids}")
    return sig, servers, sip_servers, targets


def _with_targets(agency: AgencySpec, intercepts: tuple[InterceptSpec, ...]) -> AgencySpec:
    """An ETSI agency learns the subject's prefixes from the intercepts it gets (the PDU's direction)."""
    if agency.etsi is None:
        return agency
    targets = {i.content_id: targets_from(i.filters) for i in intercepts if i.content_id in agency.cccids}
    return replace(agency, etsi=replace(agency.etsi, targets={c: t for c, t in targets.items() if t}))


def load(path: Path) -> MdConfig:
    """Read and check the config; refuse a file with keys that others may read."""
    return parse(read(path, holds_keys=lambda raw: "iap" in raw), Path(path).resolve().parent, str(path))
