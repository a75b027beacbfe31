"""md.toml's ETSI TS 102 232 handover for one [[agency]] (issue 16), validated.

Why apart from config.py: the ETSI identities, spool and TLS are a concern of
their own; each bad key gets a one-line ConfigError naming the agency and key.

    [[agency]]
    name = "lea-a"
    cccids = [4242]
    hi3 = "203.0.113.50:9003"          # ETSI TS 102 232 over TCP: content (iPCC)
    hi2 = "203.0.113.50:9002"          # optional: IRI (IPIRI, IPMMIRI)
    liid = { 4242 = "LEA-A-17" }       # the warrant's LIID for each CCCID, as the agency knows it
    operator_id = "p4tap"              # 1..16 octets
    network_element_id = "iap1"        # the IAP, 1..16 octets
    # interception_point_id = "ip1"    # 1..8 characters
    # country = "NZ"                   # authorization and delivery country code
    # keepalive = 30.0                 # seconds between keep-alives on an idle connection
    # keepalive_wait = 10.0            # no answer by then: reconnect and resend what is unacknowledged
    # spool = "spool/lea-a"            # default: <out_dir>/spool/<name>
    # spool_max_bytes = 1073741824     # unacknowledged octets kept per interface
    # overflow = "drop-newest"         # or "drop-oldest": counted, audited, alarmed either way
    # tls = { ca = "lea-a-ca.pem", cert = "md.pem", key = "md.key", server_name = "collector.lea-a" }
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from controller.toml_fields import ConfigError
from controller.toml_fields import endpoint as parse_endpoint
from controller.toml_fields import get as _get
from controller.toml_fields import only as _only
from mediation.etsi import EtsiError, Identity
from mediation.etsi_delivery import EtsiAgency, Network, TlsSettings
from mediation.spool import POLICIES

KEYS = {"hi3", "hi2", "liid", "operator_id", "network_element_id", "interception_point_id", "country",
        "keepalive", "keepalive_wait", "spool", "spool_max_bytes", "overflow", "tls"}


def _positive(raw: dict[str, Any], key: str, where: str, default: float) -> float:
    value = float(_get(raw, key, (int, float), where, default, show_value=True))
    if value <= 0:
        raise ConfigError(f"{where}: `{key}` must be positive")
    return value


def _tls(raw: dict[str, Any], where: str, base: Path) -> TlsSettings:
    where = f"{where} tls"
    _only(raw, {"ca", "cert", "key", "server_name"}, where)
    paths = {k: base / _get(raw, k, str, where) if k in raw else None for k in ("ca", "cert", "key")}
    for key, path in paths.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"{where}: `{key}` {path} is not a file")
    if paths["key"] is not None and paths["cert"] is None:
        raise ConfigError(f"{where}: `key` needs `cert`")
    return TlsSettings(paths["ca"], paths["cert"], paths["key"], _get(raw, "server_name", str, where, None))


def etsi_agency(raw: dict[str, Any], name: str, cccids: frozenset[int], where: str, base: Path,
                out_dir: Path) -> EtsiAgency:
    """The [[agency]] table's ETSI keys (the caller has checked name and cccids)."""
    liids_raw = _get(raw, "liid", dict, where)
    liids: dict[int, str] = {}
    for key, value in liids_raw.items():
        if not str(key).isdigit() or int(key) not in cccids or not isinstance(value, str):
            raise ConfigError(f"{where}: liid keys must be the agency's CCCIDs, values strings; got {key!r}")
        liids[int(key)] = value
    missing = sorted(cccids - set(liids))
    if missing:
        raise ConfigError(f"{where}: no liid for CCCID {missing[0]}: the agency must get each warrant's LIID")
    agency = EtsiAgency(
        name=name, hi3=_address(raw, "hi3", where), liids=liids,
        operator_id=_get(raw, "operator_id", str, where),
        network_element_id=_get(raw, "network_element_id", str, where),
        spool_dir=base / _get(raw, "spool", str, where) if "spool" in raw else out_dir / "spool" / name,
        hi2=_address(raw, "hi2", where) if "hi2" in raw else None,
        interception_point_id=_get(raw, "interception_point_id", str, where, None),
        country=_get(raw, "country", str, where, None),
        spool_max_bytes=int(_positive(raw, "spool_max_bytes", where, 1 << 30)),
        overflow=_get(raw, "overflow", str, where, "drop-newest", show_value=True),
        keepalive=_positive(raw, "keepalive", where, 30.0),
        keepalive_wait=_positive(raw, "keepalive_wait", where, 10.0),
        tls=_tls(_get(raw, "tls", dict, where), where, base) if "tls" in raw else None)
    if agency.overflow not in POLICIES:
        raise ConfigError(f"{where}: overflow must be one of {', '.join(POLICIES)}, got {agency.overflow!r}")
    try:
        for liid in liids.values():
            Identity(liid, agency.operator_id, agency.network_element_id, agency.interception_point_id,
                     agency.country).check()
    except EtsiError as error:
        raise ConfigError(f"{where}: {error}") from None
    return agency


def _address(raw: dict[str, Any], key: str, where: str) -> tuple[str, int]:
    endpoint = parse_endpoint(_get(raw, key, str, where, show_value=True), f"{where} {key}")
    return endpoint.host, endpoint.port


def targets_from(filters) -> tuple[Network, ...]:
    """The subject's prefixes, as an intercept's filters name them: a filter on a source alone
    selects what the subject sends, one on a destination alone what it receives."""
    out = []
    for f in filters:
        if (f.src is None) != (f.dst is None):
            out.append(ipaddress.ip_network(f.src or f.dst, strict=False))
    return tuple(dict.fromkeys(out))
