"""The `p4tap` command line: controller, taps, ETS, SNMP agent, mediation device, audit.

Its own package, above controller/, mib_bridge/ and mediation/, because it
is the one place that needs all three: `p4tap snmp run` starts the agent,
`p4tap md ...` is the mediation device. Kept in controller/ it made the
ground floor import the floors above it; here every floor imports only down.

:mod:`.main` holds the parser and the commands, :mod:`.args` the argparse
types that turn a bad option into a usage error before any request is sent.
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
