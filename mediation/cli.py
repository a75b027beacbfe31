"""`p4tap md ...`: the mediation device.

    p4tap md listen --config md.toml             # receive content, hand it over, keep the intercepts
    p4tap md provision --config md.toml          # provision the config's intercepts now (SNMPv3)
    p4tap md provision --config md.toml --content-id 42 --subject 192.0.2.10 --md 203.0.113.10:7000
    p4tap md status --config md.toml             # what the IAP holds and what this MD received
    p4tap md remove --config md.toml 42          # tear an intercept down at the IAP

md.toml is described in mediation/config.py (it holds SNMPv3 keys: mode 0600).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from mediation.config import ConfigError, InterceptSpec, MdConfig, load, parse_endpoint, subject_filters

log = logging.getLogger("p4tap.md")


def _config(args: argparse.Namespace) -> MdConfig:
    return load(args.md_config)


def _need_iap(config: MdConfig) -> None:
    if config.iap is None:
        raise ConfigError("this needs the IAP's SNMP agent: add an [iap] section to the config")


def cmd_listen(args: argparse.Namespace) -> int:
    from mediation.daemon import MdDaemon

    config = _config(args)
    daemon = MdDaemon(config, remove_on_exit=args.remove_on_exit)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: daemon.stop())
    status = daemon.run(args.duration)
    for s in status["content"]["intercepts"]:
        log.info("CCCID %d: %d packets, %d bytes -> %s", s["cccid"], s["packets"], s["bytes"], s["capture"])
    if status["content"]["not_written"]:
        log.warning("%d packets were received but not written (disk too slow)", status["content"]["not_written"])
    return 0


def _adhoc(args: argparse.Namespace, config: MdConfig) -> InterceptSpec:
    if args.content_id is None or len(args.content_id) != 1:
        raise ConfigError("--subject needs exactly one --content-id")
    if args.md is None and not config.listen:
        raise ConfigError("--subject needs --md ADDRESS:PORT (or a [content] listen address in the config)")
    md = parse_endpoint(args.md, "--md") if args.md else config.listen[0]
    return InterceptSpec(args.content_id[0], md, subject_filters(args.subject, "--subject"), args.lifetime, args.dscp)


def cmd_provision(args: argparse.Namespace) -> int:
    from mediation.keeper import Keeper

    config = _config(args)
    _need_iap(config)
    if args.subject:
        specs = [_adhoc(args, config)]
    elif args.content_id:
        specs = []
        for content_id in args.content_id:
            spec = config.intercept(content_id) or next(
                (s for s in config.signalling_intercepts() if s.content_id == content_id), None)
            if spec is None:
                raise ConfigError(f"no [[intercept]] with content_id {content_id} in {args.md_config} "
                                  "(or give --subject for an intercept not in the config)")
            specs.append(spec)
    else:
        specs = list(config.intercepts) + list(config.signalling_intercepts())
        if not specs:
            raise ConfigError(f"{args.md_config} has no [[intercept]], [[radius_server]] nor [[sip_server]]: give "
                              "--content-id "
                              "and --subject")
    keeper = Keeper(config.iap, specs, progress=lambda line: print(f"  {line}", flush=True))
    print(f"auditing {len(specs)} intercept(s) at IAP {config.iap.address} over SNMPv3", flush=True)
    try:
        keeper.audit()
    finally:
        keeper.close()
    if not keeper.status.reachable:
        print(f"p4tap md: the IAP at {config.iap.address} does not answer: {keeper.status.events[-1]}",
              file=sys.stderr)
        return 1
    failed = 0
    for spec in specs:
        kept = keeper.status.intercepts[spec.content_id]
        if kept.state == "active":
            what = "provisioned" if kept.provisioned else ("refreshed" if kept.refreshed else "already active")
            print(f"intercept {spec.content_id}: {what}, timeout {kept.timeout}")
        else:
            failed += 1
            print(f"intercept {spec.content_id}: NOT provisioned: {kept.last_error or kept.last_problem}",
                  file=sys.stderr)
    return 1 if failed else 0


def cmd_remove(args: argparse.Namespace) -> int:
    from mediation.keeper import Keeper, client_for
    from mediation.snmp_client import TapClientError

    config = _config(args)
    _need_iap(config)
    with client_for(config.iap) as client:
        try:
            table = client.intercepts()
            missing = 0
            for content_id in args.content_ids:
                have = table.get(content_id)
                if have is None:
                    print(f"intercept {content_id}: not at the IAP", file=sys.stderr)
                    missing += 1
                    continue
                Keeper.tear_down(client, have)
                print(f"intercept {content_id}: removed ({len(have.streams)} stream(s), then the mediation)")
        except TapClientError as error:
            print(f"p4tap md: {error}", file=sys.stderr)
            return 1
    return 1 if missing else 0


def _iap_table(config: MdConfig) -> tuple[list[dict] | None, str]:
    from mediation.keeper import client_for
    from mediation.snmp_client import TapClientError

    if config.iap is None:
        return None, "no [iap] in the config"
    try:
        with client_for(config.iap) as client:
            table = client.intercepts()
    except TapClientError as error:
        return None, f"IAP {config.iap.address} does not answer: {error}"
    rows = []
    for content_id, row in sorted(table.items()):
        rows.append({"content_id": content_id, "status": row.status,
                     "dest": f"{row.dest[0]}:{row.dest[1]}" if row.dest else "",
                     "timeout": row.timeout.isoformat(timespec="seconds") if row.timeout else None,
                     "streams": [{"index": s.index, "active": s.status == 1 and s.filter_status == 1,
                                  "enabled": s.enabled, "packets": s.packets, "drops": s.drops,
                                  "filter": vars(s.filter) if s.filter else None}
                                 for s in sorted(row.streams.values(), key=lambda s: s.index)]})
    return rows, ""


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    iap, why = _iap_table(config)
    try:
        listener = json.loads(config.status_file.read_text())
    except FileNotFoundError:
        listener = None
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the listener's status file {config.status_file}: {error}") from None
    if args.as_json:
        print(json.dumps({"iap": iap, "iap_error": why or None, "listener": listener}, indent=2, default=str))
        return 0 if iap is not None or config.iap is None else 1
    print(f"IAP {config.iap.address if config.iap else '-'}:")
    if iap is None:
        print(f"  {why}")
    elif not iap:
        print("  no intercepts visible to this MD")
    for row in iap or []:
        streams = row["streams"]
        active = sum(1 for s in streams if s["active"] and s["enabled"])
        state = "active" if row["status"] == 1 else f"status {row['status']}"
        print(f"  intercept {row['content_id']:>10}  {state}"
              f"  to {row['dest']}  until {row['timeout']}  {active}/{len(streams)} streams"
              f"  {sum(s['packets'] for s in streams)} packets, {sum(s['drops'] for s in streams)} drops")
    print(f"this MD ({config.status_file}):")
    if listener is None:
        print("  no status yet: is `p4tap md listen` running with this config?")
        return 0 if iap is not None or config.iap is None else 1
    content = listener["content"]
    state = "running" if listener.get("running") else "stopped"
    print(f"  {state}, listening on {', '.join(content.get('listening', []))}; "
          f"{content['malformed']} malformed, {content['not_written']} not written")
    for s in content["intercepts"]:
        span = ""
        if s["first"]:
            span = (f"  {datetime.fromtimestamp(s['first']):%H:%M:%S.%f}"
                    f" .. {datetime.fromtimestamp(s['last']):%H:%M:%S.%f}")
        print(f"  CCCID {s['cccid']:>10}  {s['packets']:>8} packets {s['bytes']:>10} bytes{span}  {s['capture']}")
    for agency in content.get("agencies", []):
        counts = ", ".join(f"CCCID {c}: {n['packets']} packets" + (f" ({n['failed']} failed)" if n["failed"] else "")
                           for c, n in agency["counts"].items()) or "nothing yet"
        print(f"  agency {agency['name']} ({agency['delivery']}): {counts}")
        for interface, e in agency.get("etsi", {}).items():
            state = "connected" if e["connected"] else f"NOT connected ({e['last_error'] or 'not yet'})"
            print(f"    {interface}: {state}; {e['acknowledged']} acknowledged, {e['spool_pending_octets']} octets "
                  f"spooled, {e['dropped']} dropped{' ALARM' if e['alarm'] else ''}")
    keeper = listener.get("keeper")
    if keeper:
        reach = {True: "answering", False: "NOT answering", None: "not asked yet"}[keeper["reachable"]]
        print(f"  keeper: IAP {keeper['iap']} {reach}; {keeper['audits']} audits, "
              f"{keeper['restarts_seen']} restarts seen"
              + (f" (the last kept {keeper['kept_across_last_restart']} of {len(keeper['intercepts'])} intercepts)"
                 if keeper.get("kept_across_last_restart") is not None else ""))
        for content_id, kept in keeper["intercepts"].items():
            origin = f" [{kept['derived_from']}]" if kept.get("derived_from") else ""
            print(f"    intercept {content_id}{origin}: {kept['state']}, provisioned {kept['provisioned']}x, "
                  f"refreshed {kept['refreshed']}x, timeout {kept['timeout']}"
                  + (f", last problem: {kept['last_problem']}" if kept["last_problem"] else "")
                  + (f", IAP refuses: {kept['last_error']}" if kept.get("last_error") else ""))
    _print_iri(listener.get("iri"))
    return 0 if iap is not None or config.iap is None else 1


def _clock(stamp: float | None) -> str:
    return f"{datetime.fromtimestamp(stamp):%H:%M:%S.%f}"[:-3] if stamp else "-"


def _print_iri(iri: dict | None) -> None:
    """The IRI function: targets, their current sessions, and the taps derived from them."""
    if not iri:
        return
    print(f"  IRI function on {', '.join(iri['listening']) or '-'}: {iri['received']} signalling copies, "
          f"{iri['malformed']} malformed, {iri['unknown_cccid']} of no signalling tap, {iri['failed']} failed")
    for protocol, summary in iri["protocols"].items():
        ended = summary.get("ended_by_reassignment", 0)
        fragments = (f"; {summary['reassembled']} made whole from IP fragments, "
                     f"{summary['fragment_sets_given_up']} fragment sets given up") if "reassembled" in summary else ""
        print(f"    {protocol}: {summary.get('messages', 0)} messages, {summary.get('discarded_non_target', 0)} "
              f"of non-targets parsed and dropped{fragments}" + (f"; {ended} target session(s) ended when their "
                                                                 "address went to another subscriber" if ended else ""))
        for t in summary.get("targets", []):
            who = ", ".join(f"{k} {v}" for k, v in t["identity"].items())
            if "calls" in t:
                _print_calls(t, who)
                continue
            for s in t["sessions"]:  # each of her sessions now, its own tap part
                print(f"      target {t['cccid']} ({who}): session {s['session'] or '(Access-Accept)'} from "
                      f"{s['nas']} on {', '.join(s['addresses'])} since {_clock(s['since'])}, last {s['last']}, "
                      f"{s['messages']} message{'' if s['messages'] == 1 else 's'}")
            if not t["sessions"]:
                seen = f"no session now (last: {t['last']})" if t["last"] else "no session seen"
                print(f"      target {t['cccid']} ({who}): {seen}")
    for cccid, tap in iri.get("derived_taps", {}).items():
        for part in tap["parts"].values():
            print(f"    derived tap {cccid}: {'; '.join(part['filters'])} ({part['why']})")
    if not iri.get("derived_taps"):
        print("    no derived taps now")


def _print_calls(target: dict, who: str) -> None:
    """A SIP target's calls now: parties, answered or not, the media tapped."""
    if not target["calls"]:
        seen = f"no call now (last: {target['last']})" if target["last"] else "no call seen"
        print(f"      target {target['cccid']} ({who}): {seen}")
    for c in target["calls"]:
        media = ", ".join(f"{m['address']}:{m['port']}" for m in c["media"]) or "none yet"
        print(f"      target {target['cccid']} ({who}): call {c['call_id']} "
              f"{c['parties'].get('from', '?')} -> {c['parties'].get('to', '?')}, "
              f"{'answered' if c['answered'] else 'not answered'} (last: {c['last']}) since {_clock(c['since'])}, "
              f"media {media}")


def add_subcommands(md: argparse.ArgumentParser) -> None:
    """The `md` commands, under `md` (an argparse parser of `p4tap` or of `python -m mediation`)."""
    sub = md.add_subparsers(dest="md_command", required=True, metavar="ACTION")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", dest="md_config", type=Path, required=True, metavar="MD_TOML",
                       help="the MD's config (mediation/config.py describes it; mode 0600, it holds SNMPv3 keys)")

    listen = sub.add_parser("listen", help="receive content, hand it over to agencies, keep the intercepts",
                            description="Receive pcli content on every [content] listen address, write one capture "
                                        "per CCCID, hand content over to the [[agency]] entries, receive the IAP's "
                                        "informs and keep the [[intercept]] entries provisioned (audit, refresh, "
                                        "provision again after an IAP restart). Stops on Ctrl-C / SIGTERM.")
    config_arg(listen)
    listen.add_argument("--duration", type=float, help="stop after this many seconds")
    listen.add_argument("--remove-on-exit", action="store_true",
                        help="tear the config's intercepts down at the IAP when stopping (default: they lapse at "
                             "their Timeout unless refreshed)")
    listen.set_defaults(func=cmd_listen)

    prov = sub.add_parser("provision", help="provision intercepts at the IAP now, over SNMPv3",
                          description="Provision (or repair, or refresh) intercepts with the three createAndGo SETs "
                                      "real MDs send. Without options: every [[intercept]] of the config.")
    config_arg(prov)
    prov.add_argument("--content-id", type=int, action="append", help="an intercept of the config (repeat), or the "
                                                                      "CCCID of the one --subject describes")
    prov.add_argument("--subject", help="tap all traffic of this IPv4/IPv6 address (an intercept not in the config)")
    prov.add_argument("--md", help="where the IAP sends copies, ADDRESS:PORT (default: the first [content] listen)")
    prov.add_argument("--lifetime", type=float, default=600, help="seconds until its Timeout (default 600)")
    prov.add_argument("--dscp", type=int, default=34, help="DSCP of the copies (default 34)")
    prov.set_defaults(func=cmd_provision)

    rm = sub.add_parser("remove", help="tear intercepts down at the IAP (streams, filters, then the mediation)")
    config_arg(rm)
    rm.add_argument("content_ids", type=int, nargs="+", metavar="CONTENT_ID")
    rm.set_defaults(func=cmd_remove)

    st = sub.add_parser("status", help="what the IAP holds for this MD, and what `md listen` received")
    config_arg(st)
    st.add_argument("--json", dest="as_json", action="store_true", help="as JSON")
    st.set_defaults(func=cmd_status)


def build_parser(prog: str = "python -m mediation") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_subcommands(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except (ConfigError, OSError, ValueError) as error:
        print(f"p4tap md: {error}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s md %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
