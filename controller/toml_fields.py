"""Checked reading of TOML config tables, shared by the config files of the
SNMP agent (mib_bridge/config.py) and the mediation device
(mediation/config.py): every mistake names its section and key.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.host).version

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == 6 else f"{self.host}:{self.port}"


def endpoint(text: str, where: str) -> Endpoint:
    """"ADDRESS:PORT", or "[V6ADDRESS]:PORT"."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not ADDRESS:PORT ([v6]:port for IPv6)") from None
    return Endpoint(str(address), number)


def get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...,
        show_value: bool = False) -> Any:
    """table[key], which must be of `kind` (a bool is not an int); `default` if absent, else an error.
    The error quotes the wrong value only with `show_value`: files that hold keys must never echo them."""
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}: missing `{key}`")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        if show_value:
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{where}: `{key}` must be {wanted}, got {value!r}")
        raise ConfigError(f"{where}: `{key}` has the wrong type ({type(value).__name__})")
    return value


def only(table: dict[str, Any], keys: set[str], where: str) -> None:
    """Refuse keys the section does not know (a typo must not be ignored)."""
    unknown = set(table) - keys
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def ip_address(table: dict[str, Any], key: str, where: str) -> str:
    """`key` of the table as an IP address (its canonical text)."""
    try:
        return str(ipaddress.ip_address(table.get(key, "")))
    except ValueError:
        raise ConfigError(f"{where}: {key} {table.get(key)!r} is not an IP address") from None


def read(path: Path, holds_keys: bool | Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The TOML table of a config file. A file that holds keys (`holds_keys`,
    or says so of the parsed table) is refused when group or others may
    access it: the keys may have leaked, and the operator should know."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        shared = bool(mode & 0o077)
        refusal = ConfigError(f"{path} holds SNMPv3 keys but group/others may access it "
                              f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`")
        if shared and holds_keys is True:
            raise refusal  # before reading a byte of it
        data = f.read()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if shared and callable(holds_keys) and holds_keys(raw):
        raise refusal
    return raw
