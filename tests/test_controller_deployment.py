"""How operators run the controller: over TLS with mutual authentication,
on several access switches at once, and driven through the `p4tap` CLI.
All against real bmv2 with real packets."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.veth import veth_pairs
from bmv2_topo.wire import Wire
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection, SwitchError, TlsConfig
from ptf_tests.base import MD_A, PEER, PORTS, SUBJECT, lab_controller_toml, lab_topology, pcli_copy, tcp4
from tests.conftest import needs_bmv2, needs_root

pytestmark = [needs_bmv2, needs_root]


def subject_intercept(content_id: int) -> tuple[Mediation, list[Stream]]:
    m = Mediation(content_id, ipaddress.ip_address(MD_A.ipv4), 7000,
                  timeout=datetime.now(timezone.utc) + timedelta(hours=1))
    return m, [Stream(content_id, 1, IpFilter(InetAddressType.IPV4, src_address=ipaddress.ip_address(SUBJECT.ipv4),
                                              src_length=32), True)]


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=p4tap test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", f"{name}.pem")
    (d / "rogue").mkdir()
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rogue",
        "-keyout", "rogue/client.key", "-out", "rogue/client.pem")
    for key in d.rglob("*.key"):
        key.chmod(0o600)
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_tls_with_client_authentication(tmp_path):
    pki = make_pki(tmp_path)
    bmv2 = Bmv2Switch(log_file=tmp_path / "bmv2.log", extra_target_args=[
        "--grpc-server-ssl", "--grpc-server-cacert", str(pki["ca.pem"]), "--grpc-server-cert", str(pki["server.pem"]),
        "--grpc-server-key", str(pki["server.key"]), "--grpc-server-with-client-auth"])
    bmv2.start()
    try:
        tls = TlsConfig(ca_cert=pki["ca.pem"], client_cert=pki["client.pem"], client_key=pki["client.key"])
        with SwitchConnection(bmv2.grpc_address, tls=tls) as conn:
            assert conn.is_primary
        # A client without a certificate signed by the CA is refused.
        rogue = TlsConfig(ca_cert=pki["ca.pem"], client_cert=tmp_path / "rogue/client.pem",
                          client_key=tmp_path / "rogue/client.key")
        with pytest.raises(SwitchError):
            SwitchConnection(bmv2.grpc_address, tls=rogue).connect(timeout=3)
        # And plaintext to a TLS server does not get through either.
        with pytest.raises(SwitchError):
            SwitchConnection(bmv2.grpc_address).connect(timeout=3)
    finally:
        bmv2.stop()


def test_plaintext_refused_off_loopback_unless_asked():
    with pytest.raises(SwitchError, match="TLS"):
        SwitchConnection("192.0.2.1:9559")
    SwitchConnection("192.0.2.1:9559", allow_plaintext=True).close()  # allowed when asked explicitly


def test_multihomed_subject_is_tapped_on_both_access_switches(tmp_path):
    """The subject reaches the network through two switches; one intercept
    placed on both delivers whichever path a packet takes."""
    with veth_pairs(PORTS, prefix="p4ta") as a_pairs, veth_pairs(PORTS, prefix="p4tb") as b_pairs:
        switches = []
        for tag, pairs in (("a", a_pairs), ("b", b_pairs)):
            s = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, log_file=tmp_path / f"{tag}.log")
            s.start()
            switches.append(s)
        try:
            configs = [SwitchConfig(f"access-{t}", s.grpc_address, lab_topology()) for t, s in zip("ab", switches)]
            with Controller(configs, tmp_path / "i.db", tmp_path / "a.jsonl") as c, \
                    Wire([p.host_end for p in a_pairs + b_pairs]) as wire:
                c.start()
                mediation, streams = subject_intercept(77)
                c.provision(mediation, streams, "test", switches=["access-a", "access-b"])
                pkt = tcp4(SUBJECT, PEER)
                for pairs in (a_pairs, b_pairs):
                    host = {p.port: p.host_end for p in pairs}
                    wire.drain()
                    wire.send(host[SUBJECT.port], bytes(pkt))
                    got = wire.collect(0.5)
                    assert got[host[PEER.port]] == [bytes(pkt)]
                    assert got[host[MD_A.port]] == [pcli_copy(pkt, 77, MD_A)]
                counters = c.counters(77)
                assert sum(x.packets for x in counters.values()) == 2  # one packet through each switch
        finally:
            for s in switches:
                s.stop()


def p4tap(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p4tap_cli", *args], capture_output=True, text=True,
                          timeout=60, check=check)


def lab_config(tmp_path: Path, grpc_address: str, extra: str = "") -> Path:
    """A controller config for ptf_tests.base's lab, state and socket under
    `tmp_path`; `extra` is added to the switch table (e.g. an `ets = {...}` line)."""
    config = tmp_path / "p4tap.toml"
    config.write_text(lab_controller_toml(grpc_address, switch_extra=extra))
    return config


@contextmanager
def controller_daemon(config: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`p4tap controller run` on `config` (with `env` added to the environment),
    until its control socket is up; stopped (SIGTERM) on exit unless it died
    already. The socket is `control.sock` beside the config; one left by a
    killed controller is removed first, so only the new one's counts."""
    sock, log_path = config.parent / "control.sock", config.parent / "controller.log"
    sock.unlink(missing_ok=True)
    with open(log_path, "ab") as log:  # a file, not a pipe: a chatty daemon must never block on it
        daemon = subprocess.Popen([sys.executable, "-m", "p4tap_cli", "controller", "run", "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env=None if env is None else {**os.environ, **env})
    try:
        deadline = time.time() + 60
        while not sock.exists() and time.time() < deadline:
            assert daemon.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.1)
        assert sock.exists(), f"no control socket after 60 s: {log_path.read_text()[-3000:]}"
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        daemon.wait(timeout=60)  # a controller stops in well under a second; a machine at load 12 took over 15


def test_cli_drives_a_running_controller(network, tmp_path):
    bmv2, ifaces, wire = network
    config = lab_config(tmp_path, bmv2.grpc_address)
    with controller_daemon(config):
        args = ("--socket", str(tmp_path / "control.sock"))
        added = p4tap(*args, "tap", "add", "--content-id", "42", "--md", f"{MD_A.ipv4}:7000",
                      "--subject", SUBJECT.ipv4, "--lifetime", "600")
        assert "intercept 42 installed" in added.stdout
        assert "42" in p4tap(*args, "tap", "list").stdout
        pkt = tcp4(SUBJECT, PEER)
        wire.drain()
        wire.send(ifaces[SUBJECT.port], bytes(pkt))
        assert wire.collect(0.5)[ifaces[MD_A.port]] == [pcli_copy(pkt, 42, MD_A)]
        counters = p4tap(*args, "tap", "counters", "42").stdout.splitlines()
        assert any(line.split()[:2] == ["42.1", "1"] for line in counters), counters
        bad = p4tap(*args, "tap", "add", "--content-id", "43", "--md", "198.51.100.99:7000",
                    "--subject", SUBJECT.ipv4, check=False)
        assert bad.returncode == 1 and "no route to mediation device 198.51.100.99" in bad.stderr
        assert "removed" in p4tap(*args, "tap", "remove", "42").stdout
        wire.send(ifaces[SUBJECT.port], bytes(pkt))
        assert wire.collect(0.5)[ifaces[MD_A.port]] == []
        audit = p4tap("audit", "verify", str(tmp_path / "state" / "audit.jsonl"), check=False)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        log = (tmp_path / "state" / "audit.jsonl").read_text()
        assert '"provision"' in log and '"refuse"' in log and '"remove"' in log and "cli:root" in log
        assert oct((tmp_path / "state" / "intent.db").stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "control.sock").exists()

