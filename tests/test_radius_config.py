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
