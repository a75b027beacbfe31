"""RFC 4190 ETS conditioning as the controller sees it: the per-switch
settings (trusted ports, ETS code points, the per-port cap, the policy) and
the arithmetic the data plane needs precomputed.

The data plane (p4src/include/ets.p4) does one exact lookup per IP packet on
(ingress port, TOS byte); this module decides what each (port, mark) does,
controller/entries.py turns that into P4Runtime entities.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 4190 §4.1.2: EF for ETS media, an AF class for signalling. AF31 rather
# than AF41 so that intercept copies, whose mediation DSCP defaults to AF41
# (cTap2MediationDscp DEFVAL 34), are not taken for ETS by default.
EF = 46
AF31 = 26
DEFAULT_CLASS_DSCP = 0   # §4.4.1: untrusted ETS marks are reset to the default class

MEDIA, SIGNALLING, RESET, DEMOTED = "ets-media", "ets-signalling", "reset", "demoted"


class EtsConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EtsConfig:
    """ETS conditioning of one switch.

    `ports` are the ingress ports conditioned; of them, `trusted_ports` keep
    their ETS marks, the others get them reset. The cap is per trusted port,
    in bytes/s and bytes of burst (SLAs cite 1% to 10% of port capacity).
    `priority_queues` is the number of egress queues the switch was started
    with: bmv2 drops a packet whose priority is that number or more, so every
    configured priority must be below it.
    """

    ports: tuple[int, ...]
    trusted_ports: frozenset[int] = frozenset()
    media_dscp: tuple[int, ...] = (EF,)
    signalling_dscp: tuple[int, ...] = (AF31,)
    media_priority: int = 2
    signalling_priority: int = 1
    rate_bytes: int = 125_000          # 1 Mbit/s
    burst_bytes: int = 15_000
    preemptive: bool = False
    priority_queues: int = 3
    default_dscp: int = DEFAULT_CLASS_DSCP

    def __post_init__(self) -> None:
        codes = list(self.media_dscp) + list(self.signalling_dscp)
        for d in codes + [self.default_dscp]:
            if not 0 <= d <= 63:
                raise EtsConfigError(f"DSCP {d} is not in 0..63")
        if len(set(codes)) != len(codes):
            raise EtsConfigError(f"ETS code points repeat or overlap: {codes}")
        if self.default_dscp in codes:
            raise EtsConfigError(f"the default class DSCP {self.default_dscp} cannot be an ETS mark")
        if not set(self.trusted_ports) <= set(self.ports):
            raise EtsConfigError(f"trusted ports {sorted(set(self.trusted_ports) - set(self.ports))} are not ETS ports")
        for p in self.ports:
            if not 0 <= p < 511:
                raise EtsConfigError(f"port {p} is not a switch port (0..510)")
        for name in ("media_priority", "signalling_priority"):
            prio = getattr(self, name)
            if not 1 <= prio < self.priority_queues or prio > 7:
                raise EtsConfigError(f"{name} {prio} must be in 1..{min(self.priority_queues - 1, 7)} "
                                     f"(the switch has {self.priority_queues} priority queues; 0 is normal traffic)")
        if self.rate_bytes <= 0 or self.burst_bytes <= 0:
            raise EtsConfigError("the ETS cap needs a positive rate and burst")

    def classes(self) -> dict[int, tuple[str, int]]:
        """DSCP -> (class, egress priority) of every ETS mark."""
        out = {d: (MEDIA, self.media_priority) for d in self.media_dscp}
        out |= {d: (SIGNALLING, self.signalling_priority) for d in self.signalling_dscp}
        return out


def class_of(cfg: EtsConfig, port: int, tos: int) -> str:
    """The class whose counter a (port, TOS byte) entry's hits belong to."""
    if port not in cfg.trusted_ports:
        return RESET
    return cfg.classes()[tos >> 2][0]


def csum_delta(old_tos: int, new_tos: int) -> int:
    """~m + m' of RFC 1624 eqn. 3 for a change of the IPv4 TOS byte, folded to
    16 bits. The version/IHL byte sharing the word cancels out."""
    total = (0xFFFF - old_tos) + new_tos
    return (total & 0xFFFF) + (total >> 16)


@dataclass(frozen=True)
class EtsMark:
    """What one (ingress port, TOS byte) does: reset to `new_tos`, or go to
    `priority` (capped unless preemptive)."""

    port: int
    tos: int
    klass: str
    new_tos: int | None = None
    priority: int = 0
    capped: bool = True


def marks(cfg: EtsConfig) -> list[EtsMark]:
    """Every entry the data plane needs: each ETS DSCP with each ECN value on
    each conditioned port."""
    out = []
    for port in sorted(cfg.ports):
        for dscp, (klass, prio) in sorted(cfg.classes().items()):
            for ecn in range(4):
                tos = dscp << 2 | ecn
                if port in cfg.trusted_ports:
                    out.append(EtsMark(port, tos, klass, priority=prio, capped=not cfg.preemptive))
                else:
                    out.append(EtsMark(port, tos, RESET, new_tos=cfg.default_dscp << 2 | ecn))
    return out


_LIST_KEYS = ("ports", "trusted_ports", "media_dscp", "signalling_dscp")
_INT_KEYS = ("media_priority", "signalling_priority", "rate_bytes", "burst_bytes", "priority_queues", "default_dscp")


def to_dict(cfg: EtsConfig) -> dict:
    """The settings as JSON/TOML values (lists sorted)."""
    out: dict = {k: sorted(getattr(cfg, k)) for k in _LIST_KEYS}
    out |= {k: getattr(cfg, k) for k in _INT_KEYS}
    out["preemptive"] = cfg.preemptive
    return out


def from_dict(raw: dict, where: str = "ets") -> EtsConfig:
    """Settings from a config table or a control request; every mistake is an
    EtsConfigError naming the key."""
    unknown = set(raw) - set(_LIST_KEYS) - set(_INT_KEYS) - {"preemptive"}
    if unknown:
        raise EtsConfigError(f"{where}: unknown keys {sorted(unknown)}")
    kw: dict = {}
    for k in _LIST_KEYS:
        if k in raw:
            v = raw[k]
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise EtsConfigError(f"{where}: `{k}` must be a list of integers, got {v!r}")
            kw[k] = frozenset(v) if k == "trusted_ports" else tuple(v)
    for k in _INT_KEYS:
        if k in raw:
            if not isinstance(raw[k], int) or isinstance(raw[k], bool):
                raise EtsConfigError(f"{where}: `{k}` must be an integer, got {raw[k]!r}")
            kw[k] = raw[k]
    if "preemptive" in raw:
        if not isinstance(raw["preemptive"], bool):
            raise EtsConfigError(f"{where}: `preemptive` must be true or false")
        kw["preemptive"] = raw["preemptive"]
    if "ports" not in kw:
        raise EtsConfigError(f"{where}: missing `ports` (the ingress ports ETS conditions)")
    try:
        return EtsConfig(**kw)
    except EtsConfigError as error:
        raise EtsConfigError(f"{where}: {error}") from None
