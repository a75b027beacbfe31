"""Command line of ``p4tap-softswitch``, shaped like ``simple_switch_grpc``'s::

    p4tap-softswitch [-i PORT@IFACE]... [--device-id N] [--log-file F] [--log-console]
                     [-L LEVEL] [--thrift-port N] (--no-p4 | CONFIG.json)
                     [-- --grpc-server-addr ADDR --cpu-port N --priority-queues N ...]

``--thrift-port`` serves the part of bmv2's Thrift interface that sets egress
queue depths and rates (``simple_switch_CLI``'s ``set_queue_depth`` and
``set_queue_rate``; see ``softswitch.thrift``), on 127.0.0.1; without it
there is no Thrift server.  Options of bmv2 that only configure what this
switch does not have (notifications socket) are accepted and ignored, so the
launchers that drive bmv2 drive this switch unchanged; ``--pcap`` and
``--dump-packet-data`` are ignored with a warning; options that would change
how packets flow (``--use-files``, ``--packet-in``, ``--restore-state``) are
refused.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from . import __version__

__all__ = ["main", "parse_args"]

LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR, "off": logging.CRITICAL + 10}

HELP = """Usage: p4tap-softswitch [options] <path to JSON config file>
p4tap's software switch: bmv2 simple_switch_grpc's behaviour, in Python.
Options:
  -h [ --help ]               Display this help message
  -i [ --interface ] arg      <port-num>@<interface-name>: Attach network
                              interface <interface-name> as port <port-num> at
                              startup. Can appear multiple times
  --thrift-port arg           Serve bmv2's Thrift queue settings (set_queue_depth,
                              set_queue_rate of simple_switch_CLI) on 127.0.0.1:arg
  --device-id arg             Device ID (default 0)
  --log-console               Enable logging on stdout
  --log-file arg              Enable logging to given file (".txt" is appended, as bmv2 does)
  -L [ --log-level ] arg      'trace', 'debug', 'info', 'warn', 'error', 'off'; default is 'trace'
  --log-flush                 Flush the log file after every message
  --notifications-addr arg    Accepted for compatibility; ignored
  --no-p4                     Start without a P4 program (push one over P4Runtime)
  -v [ --version ]            Display version information
  --json-version              Display max bmv2 JSON version supported
Target options (after '--'):
  --grpc-server-addr arg      Bind gRPC server to given address [default is 0.0.0.0:9559]
  --grpc-server-ssl           Enable SSL/TLS for gRPC server
  --grpc-server-cacert arg    Path to pem file holding CA certificate to verify peer against
  --grpc-server-cert arg      Path to pem file holding server certificate
  --grpc-server-key arg       Path to pem file holding server key
  --grpc-server-with-client-auth  Require client to have a valid certificate
  --cpu-port arg              Port number for P4Runtime packet-in / packet-out (not 0)
  --drop-port arg             Drop port (default is 511)
  --priority-queues arg       Number of priority queues per port (default is 1, at
                              most 32); standard_metadata.priority chooses one, the
                              highest is served first, priority >= arg is dropped
  --max-mc-groups arg         Maximum number of multicast groups (default is 4096)
  --max-l1-entries arg        Maximum number of L1 multicast entries (default is 4096)
  --max-l2-entries arg        Maximum number of L2 multicast entries (default is 8192)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # bmv2 prints the message and exits 1
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    if "--" in argv:
        cut = argv.index("--")
        main_argv, target_argv = argv[:cut], argv[cut + 1:]
    else:
        main_argv, target_argv = argv, []
    p = _Parser(add_help=False, allow_abbrev=False)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-i", "--interface", action="append", default=[])
    p.add_argument("--pcap", nargs="?", const=".")
    p.add_argument("--use-files")
    p.add_argument("--packet-in")
    p.add_argument("--thrift-port", type=int)
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--nanolog")
    p.add_argument("--log-console", action="store_true")
    p.add_argument("--log-file")
    p.add_argument("-L", "--log-level", default="trace")
    p.add_argument("--log-flush", action="store_true")
    p.add_argument("--log-file-max-size")
    p.add_argument("--log-file-max-files")
    p.add_argument("--notifications-addr")
    p.add_argument("--restore-state")
    p.add_argument("--dump-packet-data")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("--json-version", action="store_true")
    p.add_argument("--no-p4", action="store_true")
    p.add_argument("--max-port-count", type=int, default=512)
    p.add_argument("config", nargs="?")
    args = p.parse_args(main_argv)

    t = _Parser(add_help=False, allow_abbrev=False)
    t.add_argument("--grpc-server-addr", default="0.0.0.0:9559")
    t.add_argument("--grpc-server-ssl", action="store_true")
    t.add_argument("--grpc-server-cacert")
    t.add_argument("--grpc-server-cert")
    t.add_argument("--grpc-server-key")
    t.add_argument("--grpc-server-with-client-auth", action="store_true")
    t.add_argument("--cpu-port", type=int)
    t.add_argument("--drop-port", type=int, default=511)
    t.add_argument("--priority-queues", type=int, default=1)
    t.add_argument("--max-mc-groups", type=int, default=4096)
    t.add_argument("--max-l1-entries", type=int, default=4096)
    t.add_argument("--max-l2-entries", type=int, default=8192)
    t.add_argument("--load-modules")
    t.add_argument("--disable-swap", action="store_true")
    t.add_argument("--dp-grpc-server-addr")
    targs = t.parse_args(target_argv)
    return args, targs


def _setup_logging(args: argparse.Namespace) -> None:
    level = LEVELS.get(args.log_level)
    if level is None:
        print(f"error: invalid log level {args.log_level!r}", file=sys.stderr)
        sys.exit(1)
    logging.addLevelName(5, "TRACE")
    root = logging.getLogger("softswitch")
    root.setLevel(level)
    root.propagate = False
    fmt = logging.Formatter("[%(asctime)s.%(msecs)03d] [softswitch] [%(levelname)s] %(message)s", "%H:%M:%S")
    if args.log_file:
        # bmv2's spdlog writes to the given name + ".txt"; so does this switch
        h = logging.FileHandler(args.log_file + ".txt")
        h.setFormatter(fmt)
        root.addHandler(h)
    if args.log_console:
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(fmt)
        root.addHandler(h)
    if not root.handlers:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 10)


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        print(f"error: cannot read {what} {path}: {e.strerror}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, targs = parse_args(argv)
    if args.help:
        print(HELP)
        return 0
    if args.version:
        print(__version__)
        return 0
    if args.json_version:
        print("2.24")
        return 0
    if args.config is None and not args.no_p4:
        print("No input config file specified (use --no-p4 to start without one)", file=sys.stderr)
        return 1
    for opt, val in (("--use-files", args.use_files), ("--packet-in", args.packet_in),
                     ("--restore-state", args.restore_state), ("--dp-grpc-server-addr", targs.dp_grpc_server_addr),
                     ("--load-modules", targs.load_modules)):
        if val is not None:
            print(f"error: {opt} is not supported by p4tap-softswitch", file=sys.stderr)
            return 1
    _setup_logging(args)
    log = logging.getLogger("softswitch")
    for opt, val in (("--pcap", args.pcap), ("--dump-packet-data", args.dump_packet_data),
                     ("--nanolog", args.nanolog)):
        if val is not None:
            print(f"warning: {opt} is ignored by p4tap-softswitch", file=sys.stderr)

    from .errors import LoadError
    from .ports import PortSet
    from .program import Program
    from .runtime import Device
    from .server import P4RuntimeServer
    from .switch import SimpleSwitch

    if targs.cpu_port is not None and targs.cpu_port == 0:
        print("error: 0 is not a valid value for --cpu-port", file=sys.stderr)
        return 1
    from .queues import MAX_PRIORITY_QUEUES
    if not 1 <= targs.priority_queues <= MAX_PRIORITY_QUEUES:
        print(f"error: --priority-queues must be 1..{MAX_PRIORITY_QUEUES}, not {targs.priority_queues}",
              file=sys.stderr)
        return 1
    switch = SimpleSwitch(drop_port=targs.drop_port, priority_queues=targs.priority_queues, cpu_port=targs.cpu_port,
                          max_mc_groups=targs.max_mc_groups, max_l1=targs.max_l1_entries,
                          max_l2=targs.max_l2_entries)
    cli_json = _read(args.config, "JSON config")
    if cli_json is not None:
        try:
            switch.set_program(Program(cli_json, log=lambda m: log.info("%s", m)))
        except LoadError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    ports = PortSet()
    for spec in args.interface:
        num, sep, iface = spec.partition("@")
        if not sep or not num.isdigit() or not iface:
            print(f"error: bad interface specification {spec!r} (expected PORT@IFACE)", file=sys.stderr)
            return 1
        if targs.cpu_port is not None and int(num) == targs.cpu_port:
            print(f"error: port {num} is the CPU port; do not attach an interface to it", file=sys.stderr)
            return 1
        try:
            ports.add(int(num), iface)
            log.info("Adding interface %s as port %s", iface, num)
        except OSError as e:
            # bmv2 keeps running with a port that never sees traffic
            log.error("Cannot attach interface %s as port %s: %s", iface, num, e.strerror or e)
            print(f"warning: cannot attach interface {iface} as port {num}: {e.strerror or e}", file=sys.stderr)
    switch.transmit = ports.transmit

    device = Device(args.device_id, switch)
    tls = None
    if targs.grpc_server_ssl:
        tls = {"cert": _read(targs.grpc_server_cert, "server certificate"),
               "key": _read(targs.grpc_server_key, "server key"),
               "ca": _read(targs.grpc_server_cacert, "CA certificate"),
               "client_auth": targs.grpc_server_with_client_auth}
        if tls["cert"] is None or tls["key"] is None:
            print("error: --grpc-server-ssl needs --grpc-server-cert and --grpc-server-key", file=sys.stderr)
            return 1
    try:
        server = P4RuntimeServer(targs.grpc_server_addr, device, ports.inject, tls=tls)
    except (OSError, RuntimeError) as e:
        print(f"error: failed to bind the gRPC server to {targs.grpc_server_addr}: {e}", file=sys.stderr)
        return 1
    switch.packet_in = server.servicer.packet_in
    thrift = None
    if args.thrift_port is not None:
        from .thrift import ThriftServer
        try:
            thrift = ThriftServer(args.thrift_port, switch, lambda: device.config.p4_device_config
                                  if device.config is not None else cli_json)
        except OSError as e:
            print(f"error: cannot serve Thrift on 127.0.0.1:{args.thrift_port}: {e.strerror or e}", file=sys.stderr)
            return 1
        thrift.start()
        log.info("Thrift server (egress queue settings) on 127.0.0.1:%d", thrift.port)
    server.start()
    print(f"Server listening on {targs.grpc_server_addr}", flush=True)
    log.info("p4tap-softswitch %s, device %d, %d port(s)", __version__, args.device_id, len(ports.ports))

    def stop(signum, frame) -> None:
        ports.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from .errors import SwitchAbort
    rc = 0
    try:
        ports.run(switch.receive, switch.service)
    except SwitchAbort as e:
        log.critical("%s", e)
        print(f"p4tap-softswitch: {e}", file=sys.stderr)
        rc = 1
    finally:
        server.stop()
        if thrift is not None:
            thrift.stop()
        ports.close()
        for h in logging.getLogger("softswitch").handlers:
            h.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())


