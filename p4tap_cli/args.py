"""argparse types for `p4tap tap add`: bad values become argparse usage errors
(one line naming the option and what it accepts, exit 2) before any request is
sent, so a typo never reaches the controller and never ends in a traceback."""

from __future__ import annotations

import argparse
import ipaddress
import math

from controller.toml_fields import ConfigError, Endpoint, endpoint

#: the longest lifetime accepted: ten years, far inside datetime's range
MAX_LIFETIME_S = 10 * 366 * 24 * 3600.0


def subject_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4 or IPv6 address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address") from None


def md_endpoint(text: str) -> Endpoint:
    """ADDRESS:PORT, [v6]:PORT for IPv6, port 1..65535: the config's endpoint,
    stricter where a typed option can be (port 0 and a bare IPv6 are typos)."""
    try:
        md = endpoint(text, "--md")
    except ConfigError:  # argparse names the option itself: its message would say "--md: --md: ..."
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDRESS:PORT ([v6]:PORT for IPv6)") from None
    if md.port == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ADDRESS:PORT ([v6]:PORT), port 1..65535")
    if md.family == 6 and not text.rpartition(":")[0].startswith("["):
        raise argparse.ArgumentTypeError(f"{text!r}: an IPv6 address goes in brackets: [v6]:PORT")
    return md


def lifetime_seconds(text: str) -> float:
    """A finite number of seconds, above 0 and at most ten years."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_LIFETIME_S:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, above 0 and at most {MAX_LIFETIME_S:.0f}")
    return value
