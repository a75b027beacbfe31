"""The p4tap demo (`make run`): watch a lawful intercept happen, end to end,
the way an operator runs it.

1. builds the network (bmv2_topo/layouts.py): subject, peer, another
   subscriber, the mediation device, the IAP's management host, one access
   switch (or two, `--variant multihomed`; a NAS and a RADIUS server
   besides with `--variant radius`; the peer as a SIP service with
   `--variant voip`), with Mininet where it is
   installed, else plain network namespaces (`--hosts`);
2. starts the switch: bmv2 `simple_switch_grpc`, or p4tap's softswitch
   where bmv2 is missing (`P4TAP_TARGET`);
3. starts the IAP: the controller and the SNMPv3 agent in one process
   (`python -m mib_bridge`), on the management host;
4. starts the MD (`p4tap md listen`), which provisions two intercepts over
   SNMPv3 with the three-PDU createAndGo sequence: 4242, all traffic of the
   subject, handed over to agencies lea-a and lea-b; 4243, the subject's RTP
   only, to lea-b alone (`--variant radius`: none; it taps the RADIUS
   server's signalling, and provisions 4242 when the subject's
   Accounting-Start names the warrant's user: bmv2_topo/radius_scenario.py;
   `--variant voip`: it taps the SIP servers, and provisions 4242 on the
   media of the calls of sip:alice@example.test: bmv2_topo/voip_scenario.py);
5. drives traffic: the subject's ping, a VoIP-like RTP flow and a TCP
   transfer to the peer, and the other subscriber's ping and UDP;
6. reports, from a reference capture of every wire, per CCCID and per
   receiver what the subject sent and received against what was captured,
   that nothing else was, and that forwarding was untouched.

The capture files stay in run/demo/ (md/, lea-a/, lea-b/) for Wireshark, with
every process's log. Everything the demo creates (namespaces, veths,
processes) is removed at the end, on failure and on Ctrl-C; if a switch dies
during the run, the demo says so and reports what it has, and the switch is
restarted (bmv2_topo.keeper) and reconciled by the IAP before the demo ends.

    make run                              # or: sudo .venv/bin/python -m bmv2_topo.demo
    sudo .venv/bin/python -m bmv2_topo.demo --variant multihomed --hosts netns
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bmv2_topo import radius_scenario, voip_scenario
from bmv2_topo.bmv2_switch import Bmv2Error, Bmv2Switch, resolve_target
from bmv2_topo.demo_config import write_configs
from bmv2_topo.demo_setup import OUT_DIR, DemoError, Options, host_backend, preflight, prepare_out_dir
from bmv2_topo.demo_waits import settle, wait_provisioned
from bmv2_topo.keeper import SwitchKeeper
from bmv2_topo.layouts import IAP_MGMT, LAYOUTS, MD_ADDRESS, MD_PORT, OTHER, SNMP_PORT, SUBJECT, Layout
from bmv2_topo.mininet_topo import mininet_hosts, mininet_skip_reason
from bmv2_topo.netns import namespace_hosts
from bmv2_topo.report import Report, analyse, render, sort_out
from bmv2_topo.supervise import Child, Progress, SwitchWatch
from bmv2_topo.traffic import RTP_PORT, TCP_BYTES, drive_traffic
from bmv2_topo.veth import VethError
from bmv2_topo.wire import Recorder
from mediation.config import subject_filters
from mediation.stream_filter import Filter

# Options, DemoError and the checks before a run live in bmv2_topo.demo_setup,
# the waits on the MD in bmv2_topo.demo_waits; callers import them from here as before.

CCCID_ALL, CCCID_RTP = 4242, 4243
SIGNALLING = {"radius": radius_scenario, "voip": voip_scenario}  # variants whose warrants name a person
# Egress queue depth, packets per port. bmv2 keeps 64 (simple_switch's
# egress_buffers), and on a loaded lab machine, whose switch threads wait for a
# core, the TCP transfer's burst overflowed one now and then: forwarded frames
# lost in the lab switch, which the report rightly counts against the run.
# A hardware switch buffers megabytes; this gives bmv2 room for the burst.
QUEUE_DEPTH = 1024
AGENCIES = {"lea-a": frozenset({CCCID_ALL}), "lea-b": frozenset({CCCID_ALL, CCCID_RTP})}
INTERCEPTS: dict[int, tuple[Filter, ...]] = {
    CCCID_ALL: subject_filters(SUBJECT),
    CCCID_RTP: (Filter(src=f"{SUBJECT}/32", protocol=17, dst_ports=(RTP_PORT, RTP_PORT)),),
}


@contextlib.contextmanager
def _hosts(backend: str, layout: Layout) -> Iterator[dict]:
    factory = mininet_hosts if backend == "mininet" else namespace_hosts
    with factory(list(layout.hosts), prefix="p4td") as hosts:
        yield hosts


@dataclass
class Up:
    """What bring_up started."""

    hosts: dict
    status_file: Path
    watch: SwitchWatch
    md: Child

    def __iter__(self):
        return iter((self.hosts, self.status_file, self.watch, self.md))


@dataclass
class Run:
    """What one run builds and collects; its ExitStack takes it all down."""

    options: Options
    layout: Layout
    backend: str
    target: str
    out: Path
    progress: Progress
    report: Report
    owner: dict[str, str] = field(default_factory=dict)  # recorded switch-side interface -> host
    subject_ends: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (switch, its tap source)
    frames: list = field(default_factory=list)
    md_status: dict | None = None
    signalling: radius_scenario.SignallingReport | voip_scenario.SignallingReport | None = None

    @property
    def by_identity(self):
        """The scenario module of a variant whose warrants name a person (radius, voip), or None."""
        return SIGNALLING.get(self.layout.name)

    @property
    def intercepts(self) -> dict[int, tuple[Filter, ...]]:
        """What the report judges: the config's intercepts, or the ones the signalling derives."""
        return self.by_identity.INTERCEPTS if self.by_identity else INTERCEPTS

    @property
    def agencies(self) -> dict[str, frozenset[int]]:
        return self.by_identity.AGENCIES if self.by_identity else AGENCIES

    def start_switches(self, stack: contextlib.ExitStack, hosts: dict) -> dict[str, Bmv2Switch]:
        what = "bmv2 simple_switch_grpc" if self.target == "bmv2" else "p4tap softswitch (no bmv2 here)"
        switches = {}
        for plan in self.layout.switches:
            ports = {port: hosts[h].switch_ends[i] for port, (h, i) in plan.ports.items()}
            sw = Bmv2Switch(ports=ports, name=plan.name, target=self.target, grpc_unix_socket=True,
                            workdir=self.out / f"switch-{plan.name}", log_file=self.out / f"switch-{plan.name}.log")
            sw.start()
            stack.callback(sw.stop)
            try:
                sw.set_queue_depth(QUEUE_DEPTH)
            except Bmv2Error as error:  # a build without Thrift: bmv2's 64, said once
                self.progress(f"switch {plan.name}: egress queues left at the switch's default ({error})")
            switches[plan.name] = sw
            self.progress(f"switch {plan.name}: {what}, pid {sw.pid}, ports "
                          + ", ".join(f"{p}={h}" for p, (h, _) in sorted(plan.ports.items())))
        return switches

    def wires(self, hosts: dict) -> None:
        """The switch-side interfaces the reference capture records, and whose they are."""
        for name in ("subject", "peer", "other"):
            spec = hosts[name].spec
            for iface, end in hosts[name].switch_ends.items():
                self.owner[end] = name
                if name == "subject":
                    switch = next(i.switch for i in spec.all_ifaces() if i.name == iface)
                    plan = next(p for p in self.layout.switches if p.name == switch)
                    self.subject_ends[end] = (switch, plan.tap_source)

    def bring_up(self, stack: contextlib.ExitStack, md_extra: str | None = None, streams: int | None = None) -> Up:
        """Hosts, switches, the IAP and the MD, until the MD's intercepts are provisioned.
        `md_extra`: the MD's signalling TOML instead of the variant's (bench/radius_tap_latency.py,
        bench/sip_tap_latency.py), and `streams` how many streams its standing taps have."""
        out, progress = self.out, self.progress
        hosts = stack.enter_context(_hosts(self.backend, self.layout))
        switches = self.start_switches(stack, hosts)
        keeper = SwitchKeeper(switches).start()  # stopped before the switches (the stack unwinds in reverse)
        stack.callback(keeper.stop)
        watch = SwitchWatch(keeper, progress, out / "iap-state" / "audit.jsonl")
        stack.callback(watch.stop)
        configs = write_configs(out, self.layout, {n: s.grpc_address[len("unix:"):] for n, s in switches.items()},
                                self.options.lifetime, {} if self.by_identity else INTERCEPTS, self.agencies,
                                md_extra if md_extra is not None else
                                self.by_identity.md_toml(self.options.lifetime) if self.by_identity else "")
        iap = Child(hosts["iap"], "the IAP (controller + SNMP agent)",
                    [sys.executable, "-m", "mib_bridge", "--config", str(configs["agent"]),
                     "--controller-config", str(configs["controller"])], out / "iap.log")
        stack.callback(iap.stop)
        progress(f"IAP: controller and SNMPv3 agent on {IAP_MGMT}:{SNMP_PORT}, pid {iap.proc.pid} (log: {iap.log})")
        md = Child(hosts["md"], "the MD (p4tap md listen)",
                   [sys.executable, "-m", "p4tap_cli", "md", "listen", "--config", str(configs["md"]),
                    "--remove-on-exit"], out / "md.log")
        stack.callback(md.stop)
        progress(f"MD: `p4tap md listen` on {MD_ADDRESS}:{MD_PORT}, pid {md.proc.pid}; " + (
            f"its standing taps and warrants as {configs['md']} says" if md_extra is not None else
            self.by_identity.WHAT_THE_MD_DOES if self.by_identity else
            f"it provisions {CCCID_ALL} (all of {SUBJECT}, for lea-a and lea-b) and {CCCID_RTP} (its RTP, for lea-b) "
            "over SNMPv3"))
        status_file = out / "md" / "md-status.json"
        wait_provisioned(status_file, [md, iap], watch, progress, streams if streams is not None else
                         self.by_identity.SIGNALLING_STREAMS if self.by_identity else
                         sum(len(f) for f in INTERCEPTS.values()))
        return Up(hosts, status_file, watch, md)

    def scenario(self, stack: contextlib.ExitStack) -> None:
        progress, report = self.progress, self.report
        hosts, status_file, watch, md = self.bring_up(stack)
        self.wires(hosts)
        recorder = Recorder(self.owner)
        stack.callback(recorder.__exit__)
        if self.by_identity:  # the signalling (recorded: a call's media is content) that makes the warrant's taps
            self.signalling = self.by_identity.start(hosts, status_file, progress, self.out)
        progress(f"recording every frame on {len(self.owner)} wires as the reference; driving traffic")
        report.tcp_bytes_at_peer = drive_traffic(hosts, self.layout, watch.event, progress,
                                                 stack.enter_context(contextlib.ExitStack()))
        report.tcp_bytes_sent = TCP_BYTES
        settle(recorder, self.owner, status_file, watch, progress, self.intercepts)
        self.frames = recorder.stop()
        if self.by_identity and not watch.died:
            self.by_identity.stop(hosts, status_file, self.signalling, progress)
        report.kernel_drops = recorder.kernel_drops
        report.problems.extend(watch.died)
        report.cut_at = watch.cut_at
        if watch.died:
            watch.wait_reconciled()  # so that the MD's teardown below finds a working IAP
        progress("stopping the MD: it tears its intercepts down over SNMPv3 and closes the captures")
        code = md.stop()
        try:
            self.md_status = json.loads(status_file.read_text())
        except (OSError, json.JSONDecodeError):
            self.md_status = None
        if code != 0:
            report.problems.append(md.failure())


def new_run(options: Options, progress: Progress) -> Run:
    """A run checked and its output directory made fresh; raises DemoError when it cannot run here."""
    problem = preflight(options)
    if problem:
        raise DemoError(problem)
    layout = LAYOUTS[options.variant]()
    run = Run(options, layout, host_backend(options.hosts), resolve_target(options.target),
              Path(options.out_dir).resolve(), progress, Report(layout.name, "", ""))
    run.report.backend, run.report.target = run.backend, run.target
    prepare_out_dir(run.out)
    return run


def run_demo(options: Options, progress: Progress | None = None) -> Report:
    """The whole scenario and its report; raises DemoError when it cannot run or get going."""
    progress = progress or Progress()
    run = new_run(options, progress)
    layout = run.layout
    if options.hosts == "auto" and run.backend == "netns":
        progress(f"Mininet is not usable here ({mininet_skip_reason()}): plain network namespaces instead", mark="   ")
    progress(f"building the {layout.name} network with "
             f"{'Mininet' if run.backend == 'mininet' else 'network namespaces'}: subject {SUBJECT}, peer "
             f"{', '.join(layout.peer_addresses)}, other {OTHER}, MD {MD_ADDRESS}, IAP management {IAP_MGMT}"
             + (f"; {layout.notes[0]}" if layout.notes else ""))
    previous_sigint = signal.getsignal(signal.SIGINT)
    try:
        with contextlib.ExitStack() as stack:
            try:
                run.scenario(stack)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up must not be cut short
                progress("stopping the IAP and the switches, removing hosts and links")
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
    analyse(run.report, sort_out(run.frames, run.owner), run.intercepts, run.out / "md",
            {name: (ids, run.out / name) for name, ids in run.agencies.items()}, layout.subject_addresses,
            layout.peer_addresses, OTHER,
            run.subject_ends, run.md_status)
    if run.signalling is not None:
        SIGNALLING[layout.name].judge(run.signalling, run.out)
        run.report.signalling = run.signalling.__dict__
        run.report.problems.extend(run.signalling.problems)
    (run.out / "report.json").write_text(json.dumps(run.report.to_dict(), indent=2, default=str))
    return run.report


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(LAYOUTS), default="single",
                        help="single: one access switch; multihomed: the subject on two, each tapped; radius: the "
                             "warrant names a user, the MD taps her address from RADIUS accounting; voip: the warrant "
                             "names a SIP identity, the MD taps her calls' media from SIP")
    parser.add_argument("--hosts", choices=["auto", "mininet", "netns"], default="auto",
                        help="how hosts are built (auto: Mininet where installed, else network namespaces)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help=f"captures, logs, report (default {OUT_DIR})")
    parser.add_argument("--lifetime", type=float, default=120, help="intercept lifetime in seconds (default 120)")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill ends the demo as Ctrl-C does: cleaned up
    options = Options(args.variant, args.hosts, args.out_dir, args.lifetime)
    try:
        report = run_demo(options)
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo created has been removed", file=sys.stderr)
        return 130
    except (DemoError, Bmv2Error, VethError, radius_scenario.SignallingError) as error:
        print(f"p4tap demo: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(render(report))
    print(f"  full report: {Path(options.out_dir) / 'report.json'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
