"""Run the SNMPv3 TAP-MIB agent (RFC 3924 interface d) with its controller.

    python -m mib_bridge --config snmp.toml --controller-config p4tap.toml
    python -m mib_bridge --config snmp.toml --check      # only check the agent config (the rule it breaks)

The process runs the controller (connects to the switches in
--controller-config, reconciles them, serves its control socket so that
`p4tap tap list` works) and the agent (UDP, the addresses in [agent] listen).
Mediation devices provision intercepts with SNMPv3 SETs on
CISCO-TAP2-MIB (1.3.6.1.4.1.9.9.399) and CISCO-IP-TAP-MIB
(1.3.6.1.4.1.9.9.394); the config's [[user]], [[group]] and [[view]] say who
may. The config holds keys and must be mode 0600: see mib_bridge/config.py
for every key, or the example in README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from controller.stop_signal import StopSignal
from mib_bridge.config import ConfigError, load


def build_parser(prog: str = "python -m mib_bridge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="SNMP_TOML",
                        help="agent config: listen addresses, USM users, VACM groups/views, notification targets")
    parser.add_argument("--controller-config", type=Path, metavar="P4TAP_TOML",
                        help="controller config (as for `p4tap controller run`); required unless --check")
    parser.add_argument("--check", action="store_true", help="check the agent config and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    from controller import config as controller_config
    from controller.audit import AuditError
    from controller.control import ControlServer
    from controller.service import Controller
    from controller.store import StoreError
    from mib_bridge.agent import Agent, AgentError

    log = logging.getLogger("p4tap.snmp")
    try:
        cfg = load(args.config)
    except ConfigError as error:
        print(f"mib_bridge: {error}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: {len(cfg.users)} user(s), {len(cfg.groups)} group(s), "
              f"listening on {', '.join(map(str, cfg.listen))}")
        for note in filter(None, (user.weak_note() for user in cfg.users)):
            print(f"warning: {note}")
        return 0
    if args.controller_config is None:
        print("mib_bridge: --controller-config is required (or --check)", file=sys.stderr)
        return 2
    try:
        settings = controller_config.load(args.controller_config)
    except controller_config.ConfigError as error:
        print(f"mib_bridge: {error}", file=sys.stderr)
        return 2
    try:  # a state dir that is read-only or full: its cause in one line, not a traceback
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        controller = Controller.from_settings(settings)
    except (StoreError, AuditError, OSError) as error:
        print(f"mib_bridge: {error}", file=sys.stderr)
        return 1
    agent = Agent(cfg, controller)
    stop = StopSignal()  # before the control socket and the SNMP port show the agent as ready
    try:
        controller.start()
    except (StoreError, AuditError, OSError) as error:
        print(f"mib_bridge: {error}", file=sys.stderr)
        controller.stop()
        return 1
    server = ControlServer(settings.control_socket, controller)
    server.start()
    try:
        agent.start()
    except AgentError as error:
        print(f"mib_bridge: {error}", file=sys.stderr)
        server.close()
        controller.stop()
        return 1
    stop.wait()
    log.info("stopping (switches keep their intercepts)")
    agent.stop()
    server.close()
    controller.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
