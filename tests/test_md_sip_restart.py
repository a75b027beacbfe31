"""A target's call across a restart of the MD (issue 15): the real MD
process (`p4tap md listen`), p4tap's real SNMPv3 agent and controller on a
real switch (tests/test_md_sip.py's loopback setting: the IAP's copies of a
real sipp call's signalling, tests/fixtures, sent to the MD's signalling
port). The call is set up before the MD is killed (SIGKILL); the new MD
keeps its media tap at the IAP as it is (the IAP's audit log records no
change of it), and the BYE it alone sees removes the tap.
(tests/test_md_restart.py has the RADIUS session through the switch's data
path.)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

pytest.importorskip("sipmessage")
from mediation.config import load  # noqa: E402
from mediation.pcli import encode  # noqa: E402
from tests.sip_support import sipp_call  # noqa: E402
from tests.snmp_support import free_udp_port, tap_switch  # noqa: E402,F401 (fixture)
from tests.test_md_radius import saved_status, signalling_md_toml  # noqa: E402
from tests.test_md_snmp import held, iap, wait_for  # noqa: E402
from tests.test_sip_handler import CALLEE, FORWARD, copied  # noqa: E402

SERVER, BOB = 90002, 4243


def audit_records(home, cccid: int = BOB) -> list[dict]:
    records = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["detail"].get("content_id") == cccid or cccid in r["detail"].get("content_ids", ())]


def listen(path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "p4tap_cli", "md", "listen", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_call_keeps_its_media_tap_across_an_md_restart_and_its_bye_removes_it(tmp_path, tap_switch):
    signalling_port = free_udp_port()
    messages = sipp_call()
    with iap(tmp_path / "iap", tap_switch) as (controller, agent_port):
        path = signalling_md_toml(tmp_path, agent_port, free_udp_port(), signalling_port, f"""[[sip_server]]
address = "{CALLEE}"
content_id = {SERVER}

[[identity_target]]
content_id = {BOB}
sip_user = "bob"
lifetime = 60

[[agency]]
name = "lea-b"
cccids = [{BOB}]
file = "lea-b"
""")
        config = load(path)
        md = listen(path)
        send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def iap_copy(n: int) -> None:
            send.sendto(encode(SERVER, copied(messages[n], n in FORWARD)), ("127.0.0.1", signalling_port))

        try:
            wait_for(lambda: SERVER in held(controller), 30)
            for n in range(4):   # INVITE, 180, 200, ACK: answered, both media endpoints tapped
                iap_copy(n)
            wait_for(lambda: BOB in held(controller) and len(held(controller)[BOB][1]) == 4, 30)
            wait_for(lambda: audit_records(tmp_path / "iap")[-1]["action"] == "provision", 30)  # its outcome too
            provisioned = audit_records(tmp_path / "iap")

            md.kill()
            md.wait(30)
            config.status_file.unlink(missing_ok=True)
            md = listen(path)
            wait_for(lambda: saved_status(config).get("pid") == md.pid
                     and saved_status(config)["keeper"]["audits"] >= 1, 30)
            status = saved_status(config)
            assert status["keeper"]["intercepts"][str(BOB)]["state"] == "active"
            assert status["keeper"]["intercepts"][str(BOB)]["provisioned"] == 0, "kept, not provisioned again"
            [target] = status["iri"]["protocols"]["sip"]["targets"]
            assert [c["answered"] for c in target["calls"]] == [True]
            assert audit_records(tmp_path / "iap") == provisioned, "the IAP's intercept was neither removed nor changed"

            iap_copy(4)   # the BYE, seen by the new MD alone
            wait_for(lambda: BOB not in held(controller), 30)
            wait_for(lambda: saved_status(config)["iri"]["derived_taps"] == {}, 30)
            after = [r["action"] for r in audit_records(tmp_path / "iap")[len(provisioned):]]
            assert after[-2:] == ["remove-intent", "remove"] and "remove" not in after[:-2], after
            assert set(held(controller)) == {SERVER}
        finally:
            send.close()
            md.terminate()
            err = md.communicate(timeout=30)[1]
    assert "ERROR" not in err, err
    records = [json.loads(line) for line in (tmp_path / "lea-b" / f"iri-{BOB}.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["reason"]) for r in records][-1] == ("call-end", "BYE")
