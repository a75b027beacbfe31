"""The softswitch as a program: simple_switch_grpc's command line, target
selection through bmv2_topo.Bmv2Switch, logging, unix sockets, TLS, and
P4Runtime packet-in / packet-out through the CPU port (on both targets).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bmv2_topo.bmv2_switch import (
    Bmv2Error,
    Bmv2Switch,
    resolve_target,
    target_skip_reason,
)
from controller.switch import SwitchConnection, TlsConfig
from tests.conftest import needs_root

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "softswitch"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softswitch", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, check=False)


def test_help_and_version():
    out = run_cli("--help")
    assert out.returncode == 0
    for opt in ("-i [ --interface ]", "--device-id", "--no-p4", "--log-file", "--log-console", "--log-level",
                "--thrift-port", "--grpc-server-addr", "--cpu-port", "--priority-queues"):
        assert opt in out.stdout, opt
    assert run_cli("--version").stdout.strip()
    assert run_cli("--json-version").stdout.strip().startswith("2.")


def test_refuses_bad_command_lines():
    out = run_cli("--device-id", "0")
    assert out.returncode == 1 and "--no-p4" in out.stderr
    out = run_cli("--no-p4", "-i", "nonsense")
    assert out.returncode == 1 and "PORT@IFACE" in out.stderr
    out = run_cli("--no-p4", "--", "--cpu-port", "0")
    assert out.returncode == 1 and "cpu-port" in out.stderr
    out = run_cli(str(FIXTURES / "no-such.json"))
    assert out.returncode == 1 and "cannot read" in out.stderr
    for n in ("0", "33"):
        out = run_cli("--no-p4", "--", "--priority-queues", n)
        assert out.returncode == 1 and "--priority-queues must be 1..32" in out.stderr


def test_target_resolution(monkeypatch):
    monkeypatch.setenv("P4TAP_TARGET", "softswitch")
    assert resolve_target() == "softswitch" and target_skip_reason() is None
    monkeypatch.setenv("P4TAP_TARGET", "bmv2")
    assert resolve_target() == "bmv2"
    monkeypatch.setenv("P4TAP_TARGET", "tofino")
    with pytest.raises(Bmv2Error, match="unknown switch target"):
        resolve_target()
    assert "unknown switch target" in target_skip_reason()
    monkeypatch.delenv("P4TAP_TARGET")
    assert resolve_target() == ("bmv2" if shutil.which("simple_switch_grpc") else "softswitch")
    assert resolve_target("softswitch") == "softswitch"


def test_runs_under_the_bmv2_launcher(tmp_path):
    sw = Bmv2Switch(target="softswitch", workdir=tmp_path, name="ss", log_level="info")
    sw.start(timeout=30)
    try:
        assert sw.alive and sw.target == "softswitch"
        with SwitchConnection(sw.grpc_address) as c:
            assert c.is_primary and c.capabilities() == "1.3.0"
        cmd = sw.command()
        assert cmd[1:3] == ["-m", "softswitch"] and "--" in cmd and "--grpc-server-addr" in cmd
    finally:
        sw.stop()
    assert not sw.alive
    log = (tmp_path / "ss.log.txt").read_text()   # bmv2's convention: --log-file X writes X.txt
    assert "p4tap-softswitch" in log


def test_unix_socket_and_restart(tmp_path):
    sw = Bmv2Switch(target="softswitch", workdir=tmp_path, name="ux", grpc_unix_socket=True)
    sw.start(timeout=30)
    try:
        assert sw.grpc_address.startswith("unix:")
        with SwitchConnection(sw.grpc_address) as c:
            assert c.is_primary
        sw.restart(timeout=30)
        with SwitchConnection(sw.grpc_address) as c:
            assert c.is_primary
    finally:
        sw.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not on PATH")
def test_mutual_tls(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()

    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca", "-keyout", "ca.key",
         "-out", "ca.pem")
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:ctl")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    sw = Bmv2Switch(target="softswitch", workdir=tmp_path / "sw", name="tls", extra_target_args=[
        "--grpc-server-ssl", "--grpc-server-cacert", str(d / "ca.pem"), "--grpc-server-cert", str(d / "server.pem"),
        "--grpc-server-key", str(d / "server.key"), "--grpc-server-with-client-auth"])
    # readiness is a TCP connect, which works before TLS
    sw.start(timeout=30)
    try:
        tls = TlsConfig(ca_cert=d / "ca.pem", client_cert=d / "client.pem", client_key=d / "client.key")
        with SwitchConnection(sw.grpc_address, tls=tls) as c:
            assert c.is_primary
        from controller.switch import SwitchError
        with pytest.raises(SwitchError):
            anon = SwitchConnection(sw.grpc_address, tls=TlsConfig(ca_cert=d / "ca.pem"))
            try:
                anon.connect(timeout=3)
            finally:
                anon.close()
    finally:
        sw.stop()


# ----------------------------------------------------------------------------- packet I/O


@needs_root
@pytest.mark.parametrize("target", ["softswitch", "bmv2"])
def test_packet_in_and_out(tmp_path, target):
    """ss_arch sends unknown traffic to the CPU port (packet-in with the
    ingress port) and sends a packet-out where its header says."""
    reason = target_skip_reason(target)
    if reason:
        pytest.skip(f"{target}: {reason}")
    from google.protobuf import text_format
    from p4protos import p4info_pb2

    from tests.softswitch_support import hosts_on, switch_running
    p4info = text_format.Parse((FIXTURES / "ss_arch.p4info.txtpb").read_text(), p4info_pb2.P4Info())
    cfg = (FIXTURES / "ss_arch.json").read_bytes()
    pin_md = next(c for c in p4info.controller_packet_metadata if c.preamble.name == "packet_in")
    pout_md = next(c for c in p4info.controller_packet_metadata if c.preamble.name == "packet_out")
    with hosts_on([1, 2], prefix="p4tsio") as (pairs, cap):
        with switch_running(target, pairs, cap, p4info, cfg, tmp_path, election_id=(0, 3), cpu_port=64) as (sw, conn):
            frame = b"\x02\x00\x00\x00\x00\x09\x02\x00\x00\x00\x00\x01\x08\x06" + bytes(28) + b"packet-in"
            got = None
            for _ in range(20):  # the first frames may race the pipeline push
                cap.send(1, frame)
                try:
                    got = conn.packet_ins.get(timeout=0.5)
                    break
                except queue.Empty:
                    pass
            assert got is not None, "no packet-in"
            assert got.payload == frame
            md = {m.metadata_id: m.value for m in got.metadata}
            assert md[pin_md.metadata[0].id] == b"\x01"
            # packet-out to port 2
            out = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x40\x88\xb5" + b"packet-out" + bytes(30)
            conn.send_packet_out(out, [(pout_md.metadata[0].id, b"\x02")])
            frames = cap.collect(3.0, quiet=0.5)
            assert out in frames[2], frames



