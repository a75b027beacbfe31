"""md.toml's RADIUS servers and identity targets: defaults and one-line errors naming the key."""
import pytest

from mediation.config import ConfigError
from mediation.radius_config import identity_target, radius_server


def test_server_defaults_and_target():
    s = radius_server({"address": "198.51.100.5"}, 0)
    assert (s.auth_port, s.acct_port) == (1812, 1813)
    t = identity_target({"content_id": 15, "radius_username": "alice"}, 0)
    assert t.radius_username == "alice" and t.calling_station_id is None


@pytest.mark.parametrize("raw,key", [({"address": "nope"}, "address"), ({"address": "192.0.2.1", "acct_port": 0}, "acct_port")])
def test_bad_server(raw, key):
    with pytest.raises(ConfigError, match=key):
        radius_server(raw, 0)


@pytest.mark.parametrize("raw,key", [({"radius_username": "a"}, "content_id"), ({"content_id": 3}, "radius_username"),
                                     ({"content_id": 3, "calling_station_id": ""}, "calling_station_id"),
                                     ({"content_id": 3, "radius_username": "a", "lifetime": 1}, "lifetime")])
def test_bad_target(raw, key):
    with pytest.raises(ConfigError, match=key):
        identity_target(raw, 0)


def _md(extra: str):
    import tomllib
    from pathlib import Path

    from mediation.config import parse

    base = """
[content]
listen = ["203.0.113.10:7000"]
[iap]
address = "198.51.100.1:161"
user = "md1"
auth_key = "authkey-123"
priv_key = "privkey-123"
"""
    return parse(tomllib.loads(base + extra), Path("/tmp"))


SIGNALLING = """
[signalling]
listen = "203.0.113.10:7001"
[[radius_server]]
address = "192.0.2.50"
content_id = 90001
"""


def test_signalling_config_makes_a_standing_tap_per_radius_server():
    config = _md(SIGNALLING + '[[identity_target]]\ncontent_id = 4242\nradius_username = "alice"\n'
                 'until = "2031-01-01T00:00:00Z"\n')
    (tap,) = config.signalling_intercepts()
    assert (tap.content_id, tap.md.host, tap.md.port) == (90001, "203.0.113.10", 7001)
    assert [(f.src, f.dst, f.protocol, f.dst_ports) for f in tap.filters] == [
        (None, "192.0.2.50/32", 17, (0, 65535)), ("192.0.2.50/32", None, 17, (0, 65535))], "no port: fragments too"
    (target,) = config.identity_targets
    assert target.until.isoformat() == "2031-01-01T00:00:00+00:00"


@pytest.mark.parametrize("extra,message", [
    ('[[identity_target]]\ncontent_id = 4242\nradius_username = "a"\n', "need \\[signalling\\]"),
    (SIGNALLING + '[[identity_target]]\ncontent_id = 90001\nradius_username = "a"\n', "must all differ"),
    (SIGNALLING + '[[identity_target]]\ncontent_id = 7\nradius_username = "a"\nuntil = "soon"\n', "until"),
    (SIGNALLING + '[[identity_target]]\ncontent_id = 7\nradius_username = "a"\nuntil = 2031-01-01T00:00:00\n',
     "with its offset"),
    (SIGNALLING.replace("content_id = 90001\n", ""), "content_id"),
    (SIGNALLING + '[[identity_target]]\ncontent_id = 7\nusername = "a"\n', "unknown key"),
    ('[signalling]\nlisten = "203.0.113.10:7001"\n[[identity_target]]\ncontent_id = 7\nradius_username = "a"\n',
     "needs a \\[\\[radius_server\\]\\]"),
])
def test_bad_signalling_config_is_one_clear_line(extra, message):
    with pytest.raises(ConfigError, match=message):
        _md(extra)
