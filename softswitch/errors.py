"""Exceptions of the software switch."""

from __future__ import annotations


class SoftSwitchError(Exception):
    """Base class."""


class LoadError(SoftSwitchError):
    """The bmv2 JSON (or P4Info) cannot be loaded: malformed, or it uses
    something this switch does not implement (the message names it)."""


class Unsupported(LoadError):
    """A feature of the bmv2 JSON that the software switch does not implement."""

    def __init__(self, what: str, where: str | None = None) -> None:
        msg = f"unsupported by p4tap-softswitch: {what}"
        if where:
            msg += f" (in {where})"
        super().__init__(msg)
        self.what = what
        self.where = where


class SwitchAbort(SoftSwitchError):
    """An assert()/assume() in the P4 program failed; bmv2 aborts the switch."""
