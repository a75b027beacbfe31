"""RADIUS decoding and identity matching on packets pyrad builds."""
import pytest

pytest.importorskip("pyrad")
from pyrad.packet import AcctPacket  # noqa: E402

from mediation import radius_iri  # noqa: E402


def _acct(status: str, user: str, ip: str) -> bytes:
    pkt = AcctPacket(dict=radius_iri._dict(), secret=b"s3cret")
    pkt["User-Name"] = user
    pkt["Acct-Status-Type"] = status
    pkt["Framed-IP-Address"] = ip
    pkt["Calling-Station-Id"] = "00-11-22"
    return pkt.RequestPacket()


def test_start_of_target_decoded_and_matched():
    ev = radius_iri.decode(_acct("Start", "alice", "192.0.2.10"))
    assert ev is not None and ev.kind == "start" and ev.framed_ip == "192.0.2.10"
    t = radius_iri.IdentityTarget(cccid=7, radius_username="alice")
    assert radius_iri.target_of(ev, [t]) is t


def test_non_target_not_matched_and_garbage_ignored():
    ev = radius_iri.decode(_acct("Stop", "bob", "192.0.2.11"))
    assert ev.kind == "stop"
    assert radius_iri.target_of(ev, [radius_iri.IdentityTarget(7, radius_username="alice")]) is None
    assert radius_iri.decode(b"\x00junk") is None


def test_radclient_accounting_start_decoded():
    """The real radclient (freeradius-utils) plays the NAS over loopback."""
    import shutil, socket, subprocess
    if shutil.which("radclient") is None:
        pytest.skip("radclient not installed (Debian freeradius-utils; make apt-deps)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    attrs = "User-Name = alice\nAcct-Status-Type = Start\nFramed-IP-Address = 192.0.2.10\nAcct-Session-Id = s1\n"
    proc = subprocess.Popen(["radclient", "-r", "1", "-t", "1", f"127.0.0.1:{port}", "acct", "s3cret"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    proc.communicate(attrs, timeout=10)
    payload, _ = sock.recvfrom(4096)
    sock.close()
    ev = radius_iri.decode(payload)
    assert ev == radius_iri.RadiusEvent("start", "alice", None, "192.0.2.10", "s1")


def test_radclient_dual_stack_start_and_calling_station_target():
    """Framed-IPv6-Prefix as radclient encodes it, and a warrant on the Calling-Station-Id alone."""
    from tests.radius_support import needs_radclient, radclient_bytes

    if needs_radclient.args[0]:
        pytest.skip(needs_radclient.kwargs["reason"])
    payload = radclient_bytes({"User-Name": "dave", "Acct-Status-Type": "Interim-Update", "Acct-Session-Id": "d1",
                               "Framed-IP-Address": "198.51.100.7", "Framed-IPv6-Prefix": "2001:db8:7::/64",
                               "Calling-Station-Id": "02-00-00-00-0c-01"})
    ev = radius_iri.decode(payload)
    assert ev.kind == "interim" and ev.addresses() == ("198.51.100.7/32", "2001:db8:7::/64")
    by_station = radius_iri.IdentityTarget(9, calling_station_id="02-00-00-00-0c-01")
    assert radius_iri.target_of(ev, [radius_iri.IdentityTarget(7, radius_username="alice"), by_station]) is by_station
    both = radius_iri.IdentityTarget(10, radius_username="dave", calling_station_id="another")
    assert radius_iri.target_of(ev, [both]) is None, "both keys given: both must match"


def test_access_accept_with_framed_address_is_an_event():
    from pyrad.packet import AuthPacket

    request = AuthPacket(dict=radius_iri._dict(), secret=b"s3cret", User_Name="alice")
    request.RequestPacket()  # gives it its Request Authenticator, which the reply's is computed from
    reply = request.CreateReply()
    reply.code = 2  # Access-Accept
    reply["User-Name"] = "alice"
    reply["Framed-IP-Address"] = "192.0.2.10"
    ev = radius_iri.decode(reply.ReplyPacket())
    assert (ev.kind, ev.username, ev.framed_ip) == ("accept", "alice", "192.0.2.10")
