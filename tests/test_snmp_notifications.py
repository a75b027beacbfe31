"""Notifications to the mediation device, received by net-snmp's snmptrapd as
SNMPv3 informs (authPriv): ciscoTap2MIBActive, ciscoTap2MediationTimedOut
(honouring cTap2MediationNotificationEnable) and the debug notifications."""

from __future__ import annotations

import time

import pytest

from tests.snmp_support import (DEBUG, MED, STREAM, TAP2, TrapReceiver, filter_pdu, free_udp_port, mediation_pdu,
                                needs_net_snmp, running_switch, start_agent, stream_pdu,
                                switch_controller, tap_switch)

pytestmark = needs_net_snmp

ACTIVE, TIMED_OUT, MEDIATION_DEBUG = f"{TAP2}.0.1", f"{TAP2}.0.2", f"{TAP2}.0.3"


@pytest.fixture(scope="module")
def snmp(tmp_path_factory, tap_switch):
    home = tmp_path_factory.mktemp("snmpnotify")
    port = free_udp_port()
    trapd = TrapReceiver(home, port)
    controller = switch_controller(home, tap_switch)
    controller.start()
    notify = f'\n[[notify]]\ntarget = "127.0.0.1:{port}"\nuser = "md1"\ntype = "inform"\ntimeout = 1.0\nretries = 3\n'
    running = start_agent(home, controller, notify=notify, listen='"127.0.0.1:0"')
    running.trapd = trapd
    yield running
    running.agent.stop()
    controller.stop()
    trapd.stop()


def test_stream_able_to_intercept_sends_mib_active(snmp):
    for pdu in (mediation_pdu(201), filter_pdu(201, 1, src="192.0.2.10"), stream_pdu(201, 1)):
        assert snmp.net.set(*pdu).code == 0
    text = snmp.trapd.wait_for(f"{STREAM}.2.201.1 = INTEGER: 1")
    assert f"OID: .{ACTIVE}" in text


def test_timeout_sends_timed_out_inform(snmp):
    for pdu in (mediation_pdu(202, seconds=2), filter_pdu(202, 1, src="192.0.2.30"), stream_pdu(202, 1)):
        assert snmp.net.set(*pdu).code == 0
    text = snmp.trapd.wait_for(f"{MED}.13.202 = INTEGER: 6", seconds=15)
    assert f"OID: .{TIMED_OUT}" in text
    assert "No Such Instance" in snmp.net.get(f"{MED}.13.202").out


def test_timed_out_honours_notification_enable(snmp):
    pdu = mediation_pdu(203, seconds=2)[:-1] + [(f"{MED}.12.203", "i", "2"), (f"{MED}.13.203", "i", "4")]
    for p in (pdu, filter_pdu(203, 1, src="192.0.2.30"), stream_pdu(203, 1)):
        assert snmp.net.set(*p).code == 0
    deadline = time.time() + 10
    while time.time() < deadline and "No Such Instance" not in snmp.net.get(f"{MED}.13.203").out:
        time.sleep(0.3)
    assert "No Such Instance" in snmp.net.get(f"{MED}.13.203").out
    # the stream-less mediation 204, with notifications on, times out after 203: its inform
    # arriving shows 203's would have too
    assert snmp.net.set(*mediation_pdu(204, seconds=3)).code == 0
    text = snmp.trapd.wait_for(f"{MED}.13.204 = INTEGER: 6", seconds=15)
    assert f"{MED}.13.203" not in text
    assert f"{STREAM}.2.203.1" not in text  # nor its ciscoTap2MIBActive


def test_controller_refusal_sends_mediation_debug(snmp):
    r = snmp.net.set(*mediation_pdu(205, md="198.51.100.99"), *filter_pdu(205, 1, src="192.0.2.10"),
                     *stream_pdu(205, 1))
    assert r.code != 0
    text = snmp.trapd.wait_for(f"{DEBUG}.2.", seconds=10)
    assert f"OID: .{MEDIATION_DEBUG}" in text or f"OID: .{TAP2}.0.4" in text
    assert "no route to mediation device 198.51.100.99" in text


def test_traps_where_configured(tmp_path, tap_switch):
    """type = "trap": an SNMPv3 trap, which the receiver accepts with the agent's engine ID.
    A switch of its own (`tap_switch` only for its skip): the module's controller
    is still the primary on tap_switch."""
    engine_id = "8000a0ff0470347461702d74"
    port = free_udp_port()
    trapd = TrapReceiver(tmp_path, port, engine_id=engine_id)
    try:
        with running_switch(tmp_path) as switch:
            controller = switch_controller(tmp_path, switch)
            controller.start()
            notify = f'\n[[notify]]\ntarget = "127.0.0.1:{port}"\nuser = "md1"\ntype = "trap"\n'
            running = start_agent(tmp_path, controller, notify=notify, listen='"127.0.0.1:0"',
                                  extra_agent=f'engine_id = "{engine_id}"')
            try:
                # a Timeout 3 s ahead: with 1 s, a loaded machine (two CI runs on 2 cores)
                # once took longer than that to discover the engine and send the SET,
                # which the agent then refused as a Timeout in the past
                assert running.net.set(*mediation_pdu(210, seconds=3)).code == 0
                text = trapd.wait_for(f"{MED}.13.210 = INTEGER: 6", seconds=15)
                assert f"OID: .{TIMED_OUT}" in text
            finally:
                running.agent.stop()
                controller.stop()
    finally:
        trapd.stop()
