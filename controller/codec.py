"""The intercept model as plain JSON-compatible dicts, and back.

One encoding for every place an intercept leaves the process: the control
socket, the CLI's JSON input and output, and the intent store. Conversion is
driven by the dataclasses' own type hints, and decoding goes through the
constructors, so a decoded object is validated like any other.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from datetime import datetime
from typing import Any, TypeVar

from controller.model import InterceptError, IpFilter, Mediation, Stream

T = TypeVar("T")


def _encode_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return encode(value)
    return value


def encode(obj: Any) -> dict[str, Any]:
    return {f.name: _encode_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _decode_value(hint: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            try:
                return _decode_value(option, value, where)
            except (ValueError, TypeError) as error:
                errors.append(str(error))
        raise InterceptError(f"{where}: {value!r} fits none of {hint}: {'; '.join(errors)}")
    if hint in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        address = ipaddress.ip_address(value)
        if not isinstance(address, hint):
            raise ValueError(f"{value} is not {hint.__name__}")
        return address
    if hint is datetime:
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint):
        return decode(hint, value)
    if hint is bool:
        if not isinstance(value, bool):
            raise InterceptError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InterceptError(f"{where}: expected an integer, got {value!r}")
        return value
    return value


def decode(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from `data`; unknown keys and bad values raise InterceptError."""
    if not isinstance(data, dict):
        raise InterceptError(f"{cls.__name__}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise InterceptError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        try:
            kwargs[name] = _decode_value(hints[name], value, f"{cls.__name__}.{name}")
        except ValueError as error:
            raise InterceptError(f"{cls.__name__}.{name}: {error}") from None
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise InterceptError(f"{cls.__name__}: {error}") from None


def intercept_to_dict(mediation: Mediation, streams: list[Stream]) -> dict[str, Any]:
    return {"mediation": encode(mediation), "streams": [encode(s) for s in streams]}


def intercept_from_dict(data: dict[str, Any]) -> tuple[Mediation, list[Stream]]:
    if not isinstance(data, dict) or "mediation" not in data:
        raise InterceptError("an intercept is an object with `mediation` and `streams`")
    mediation = decode(Mediation, data["mediation"])
    streams = [decode(Stream, s) for s in data.get("streams", [])]
    return mediation, streams


__all__ = ["encode", "decode", "intercept_to_dict", "intercept_from_dict", "IpFilter"]
