"""`p4tap`: run the controller, and list, add and remove taps on a running one.

    p4tap controller run --config p4tap.toml
    p4tap tap add --content-id 42 --md 203.0.113.10:7000 --subject 192.0.2.10 --lifetime 3600
    p4tap tap add --replace --content-id 42 ...   # an installed CCCID is refused without --replace
    p4tap tap list
    p4tap tap counters 42
    p4tap tap remove 42
    p4tap snmp run --config p4tap.toml --agent-config snmp.toml
    p4tap audit verify /var/lib/p4tap/audit.jsonl
    p4tap md listen --config md.toml        # the mediation device (see `p4tap md --help`)
    p4tap md provision --config md.toml
    p4tap md status --config md.toml
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from controller import codec
from controller.config import DEFAULT_CONTROL_SOCKET, ConfigError, load
from controller.control import ControlError, ControlServer, request
from controller.audit import AuditError
from controller.model import InetAddressType, InterceptError, IpFilter, Mediation, Stream
from controller.store import StoreError
from controller.switch import SwitchError
from controller.stop_signal import StopSignal

from .args import lifetime_seconds, md_endpoint, subject_address


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return args.socket
    if args.config:
        return load(args.config).control_socket
    return DEFAULT_CONTROL_SOCKET


def cmd_controller_run(args: argparse.Namespace) -> int:
    from controller.service import Controller

    settings = load(args.config)
    stop = StopSignal()  # before the control socket shows the daemon as ready
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = logging.getLogger("p4tap")
    controller = Controller.from_settings(settings)
    controller.on_expired(lambda m: log.info("intercept %d timed out and was removed", m.content_id))
    log.info("connecting to %s", ", ".join(f"{s.name} ({s.address})" for s in settings.switches))
    controller.start()
    server = ControlServer(settings.control_socket, controller)
    server.start()
    log.info("controller running; control socket %s", settings.control_socket)
    stop.wait()
    log.info("stopping (switches keep their state)")
    server.close()
    controller.stop()
    return 0


def _intercept_from_args(args: argparse.Namespace) -> dict:
    if args.json:
        return json.loads(Path(args.json).read_text() if args.json != "-" else sys.stdin.read())
    md, port = ipaddress.ip_address(args.md.host), args.md.port
    subject = args.subject
    addr_type = InetAddressType.IPV4 if subject.version == 4 else InetAddressType.IPV6
    timeout = datetime.now(timezone.utc) + timedelta(seconds=args.lifetime)
    mediation = Mediation(args.content_id, md, port, dscp=args.dscp, timeout=timeout)
    bits = 32 if subject.version == 4 else 128
    streams = [Stream(args.content_id, 1, IpFilter(addr_type, src_address=subject, src_length=bits), True),
               Stream(args.content_id, 2, IpFilter(addr_type, dst_address=subject, dst_length=bits), True)]
    return codec.intercept_to_dict(mediation, streams)


def cmd_tap(args: argparse.Namespace) -> int:
    path = _socket_path(args)
    if args.tap_command == "list":
        taps = request(path, {"op": "list"})
        if args.as_json:
            print(json.dumps(taps, indent=2))
            return 0
        print(f"{'CCCID':>10}  {'mediation device':<28} {'timeout (UTC)':<20} {'streams':>7}  {'state':<8} switches")
        for t in taps:
            m = t["mediation"]
            enabled = sum(1 for s in t["streams"] if s["enabled"])
            refused = t.get("refused") or {}
            print(f"{m['content_id']:>10}  {m['dest_address'] + ':' + str(m['dest_port']):<28} "
                  f"{(m['timeout'] or '-')[:19]:<20} {enabled:>7}  {'REFUSED' if refused else 'active':<8} "
                  f"{','.join(t['switches'])}")
            for switch, reason in sorted(refused.items()):
                print(f"{'':>10}  refused by {switch}: {reason}")
        return 0
    if args.tap_command == "add":
        intercept = _intercept_from_args(args)
        result = request(path, {"op": "add", "intercept": intercept, "switches": args.switch or None,
                                 "replace": args.replace})
        print(f"intercept {result['content_id']} installed")
        return 0
    if args.tap_command == "remove":
        request(path, {"op": "remove", "content_id": args.content_id})
        print(f"intercept {args.content_id} removed")
        return 0
    if args.tap_command == "counters":
        counters = request(path, {"op": "counters", "content_id": args.content_id})
        print(f"{'stream':<14} {'packets':>12} {'octets':>14} {'drops':>8}")
        for stream, c in counters.items():
            print(f"{stream:<14} {c['packets']:>12} {c['octets']:>14} {c['drops']:>8}")
        return 0
    raise AssertionError(args.tap_command)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def cmd_ets(args: argparse.Namespace) -> int:
    payload: dict = {"op": "ets-show", "switch": args.switch}
    if args.ets_command == "set":
        changes = {k: v for k, v in (("ports", args.ports), ("trusted_ports", args.trusted_ports),
                                     ("media_dscp", args.media_dscp), ("signalling_dscp", args.signalling_dscp),
                                     ("rate_bytes", args.rate), ("burst_bytes", args.burst)) if v is not None}
        if args.policy is not None:
            changes["preemptive"] = args.policy == "preemptive"
        payload = {"op": "ets-set", "switch": args.switch, "changes": changes}
    result = request(_socket_path(args), payload)
    if args.ets_command in ("show", "set"):
        cfg = result["config"]
        if cfg is None:
            print(f"{args.switch}: no ETS conditioning")
        else:
            for k, v in cfg.items():
                print(f"{k:<20} {v}")
    if args.ets_command in ("show", "counters"):
        print(f"{'class':<16} {'packets':>12} {'octets':>14}")
        for klass, c in result["counters"].items():
            print(f"{klass:<16} {c['packets']:>12} {c['octets']:>14}")
    return 0


def cmd_snmp_run(args: argparse.Namespace) -> int:
    from mib_bridge import cli as snmp_cli

    return snmp_cli.run(argparse.Namespace(config=args.agent_config, controller_config=args.config, check=args.check,
                                           log_level=args.log_level))


def cmd_status(args: argparse.Namespace) -> int:
    for name, s in request(_socket_path(args), {"op": "status"}).items():
        state = "primary" if s["primary"] else ("connected, backup" if s["connected"] else "DISCONNECTED")
        print(f"{name:<12} {s['address']:<22} {state:<18} {s['entries']} entries")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """The log's hash chain, then whether it accounts for every change the
    intent store holds (controller.intent_trail): a log that lags the intent
    is not intact either."""
    from controller import audit
    from controller.intent_trail import TrailError, lagging

    status = audit.main(["verify", str(args.path)])
    store = args.store if args.store is not None else args.path.parent / "intent.db"
    if status == 2 or (args.store is None and not store.exists()):
        return status
    try:
        lag = lagging(args.path, store)
    except (TrailError, OSError) as error:
        print(f"{args.path}: cannot check against {store}: {error}", file=sys.stderr)
        return 2
    if lag.ok:
        print(f"{args.path}: records every change {store} holds")
        return status
    print(f"{args.path}: LAGS THE INTENT: {store} holds changes of intercept(s) "
          f"{', '.join(map(str, lag.content_ids))} the log has no record of; first: {lag.problems[0]}")
    for problem in lag.problems:
        print(problem, file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p4tap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="controller config (TOML); also tells where its socket is")
    parser.add_argument("--socket", type=Path, help=f"control socket of a running controller (default {DEFAULT_CONTROL_SOCKET})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ctl = sub.add_parser("controller", help="run the controller daemon")
    ctl_sub = ctl.add_subparsers(dest="controller_command", required=True, metavar="ACTION")
    run = ctl_sub.add_parser("run", help="connect to the configured switches, reconcile, and serve the control socket")
    run.add_argument("--config", type=Path, required=True, help="controller config (TOML)")
    run.set_defaults(func=cmd_controller_run)

    tap = sub.add_parser("tap", help="intercepts on a running controller")
    tap_sub = tap.add_subparsers(dest="tap_command", required=True, metavar="ACTION")
    lst = tap_sub.add_parser("list", help="installed intercepts")
    lst.add_argument("--json", dest="as_json", action="store_true", help="full intercepts as JSON")
    add = tap_sub.add_parser("add", help="tap all traffic of one subject address (or give --json)",
                             description="Install an intercept. The simple form taps all traffic from and to "
                                         "--subject; --json takes a full intercept (as `tap list --json` prints).")
    add.add_argument("--content-id", type=int, help="CCCID (1..2147483647)")
    add.add_argument("--md", type=md_endpoint, help="mediation device ADDRESS:PORT ([v6]:port for IPv6)")
    add.add_argument("--subject", type=subject_address, help="the subject's IPv4 or IPv6 address")
    add.add_argument("--lifetime", type=lifetime_seconds, default=3600, help="seconds until the intercept ends (default 3600)")
    add.add_argument("--dscp", type=int, default=34, help="DSCP of the copies (default 34)")
    add.add_argument("--switch", action="append", help="switch to place it on (repeat; default: all)")
    add.add_argument("--json", help="intercept JSON file, or - for stdin")
    add.add_argument("--replace", action="store_true", help="modify the intercept if its CCCID is installed "
                                                            "(refused without it)")
    rm = tap_sub.add_parser("remove", help="remove an intercept")
    rm.add_argument("content_id", type=int)
    cnt = tap_sub.add_parser("counters", help="intercepted packets and drops per stream")
    cnt.add_argument("content_id", type=int)
    for p in (lst, add, rm, cnt):
        p.set_defaults(func=cmd_tap)

    ets_p = sub.add_parser("ets", help="RFC 4190 ETS conditioning on a running controller",
                           description="Show or change a switch's ETS conditioning (trusted ports, code points, "
                                       "cap, policy) and read its per-class counters. Changes apply at once and "
                                       "last until the controller restarts (the config file is read at start).")
    ets_sub = ets_p.add_subparsers(dest="ets_command", required=True, metavar="ACTION")
    e_show = ets_sub.add_parser("show", help="settings and per-class counters")
    e_cnt = ets_sub.add_parser("counters", help="packets and octets per class (ets-media, ets-signalling, "
                                                "reset: untrusted marks reset, demoted: over the cap)")
    e_set = ets_sub.add_parser("set", help="change settings (only those given)")
    e_set.add_argument("--ports", type=_int_list, help="ingress ports conditioned, e.g. 1,2,3")
    e_set.add_argument("--trusted-ports", type=_int_list, help="of those, the ports whose ETS marks are kept")
    e_set.add_argument("--media-dscp", type=_int_list, help="ETS media code points (default 46, EF)")
    e_set.add_argument("--signalling-dscp", type=_int_list, help="ETS signalling code points (default 26, AF31)")
    e_set.add_argument("--rate", type=int, help="ETS cap per trusted port, bytes/s")
    e_set.add_argument("--burst", type=int, help="ETS burst per trusted port, bytes")
    e_set.add_argument("--policy", choices=["non-preemptive", "preemptive"],
                       help="over-cap ETS demoted (non-preemptive, default) or kept at ETS priority")
    for p in (e_show, e_cnt, e_set):
        p.add_argument("--switch", required=True, help="switch name (as in the config)")
        p.set_defaults(func=cmd_ets)

    snmp = sub.add_parser("snmp", help="the SNMPv3 TAP-MIB agent mediation devices provision through")
    snmp_sub = snmp.add_subparsers(dest="snmp_command", required=True, metavar="ACTION")
    snmp_run = snmp_sub.add_parser("run", help="run the controller and the SNMP agent in one process",
                                   description="Run the controller (as `controller run`) and the SNMPv3 agent serving "
                                               "CISCO-TAP2-MIB and CISCO-IP-TAP-MIB; see `python -m mib_bridge --help`.")
    snmp_run.add_argument("--config", type=Path, required=True, help="controller config (TOML)")
    snmp_run.add_argument("--agent-config", type=Path, required=True,
                          help="SNMP agent config (TOML, mode 0600: it holds the USM keys)")
    snmp_run.add_argument("--check", action="store_true", help="only check the agent config")
    snmp_run.set_defaults(func=cmd_snmp_run)

    status = sub.add_parser("status", help="switch connections of a running controller")
    status.set_defaults(func=cmd_status)

    from mediation import cli as md_cli

    md = sub.add_parser("md", help="the mediation device: receive content, provision over SNMPv3, status",
                        description=md_cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    md_cli.add_subcommands(md)

    aud = sub.add_parser("audit", help="the audit log")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    ver = aud_sub.add_parser("verify", help="check the hash chain of an audit log, and that it records every change "
                                            "of the intent store")
    ver.add_argument("path", type=Path)
    ver.add_argument("--store", type=Path, metavar="INTENT_DB",
                     help="the intent store to check the log against (default: intent.db beside the log, if there)")
    ver.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "tap" and args.tap_command == "add" and not args.json:
        missing = [o for o in ("content_id", "md", "subject") if getattr(args, o) is None]
        if missing:
            parser.error("tap add needs --json, or all of " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if args.command == "md":
        from mediation import cli as md_cli

        return md_cli.run(args)
    try:
        return args.func(args)
    except (ControlError, ConfigError, InterceptError, OSError, json.JSONDecodeError, SwitchError, StoreError,
            AuditError) as error:
        print(f"p4tap: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
