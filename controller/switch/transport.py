"""What channel a connection may open: TLS credentials, and plaintext only to loopback.

RFC 3924 §2.2 wants intercept provisioning over an authenticated, encrypted
link; :class:`~controller.switch.SwitchConnection` refuses plaintext to any
address :func:`is_loopback_address` does not vouch for.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc

from .errors import SwitchError


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the P4Runtime channel.

    ``ca_cert`` verifies the switch's certificate.  Give ``client_cert`` and
    ``client_key`` together for mutual authentication (the switch then knows
    which controller is provisioning intercepts).  ``server_name_override`` is
    for certificates whose name does not match the address dialled (e.g. a lab
    switch reached by IP); leave it unset in production.
    """

    ca_cert: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name_override: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.client_cert is None) != (self.client_key is None):
            raise SwitchError(
                "TLS: client_cert and client_key must be given together "
                "(both for mutual authentication, or neither)"
            )

        def read(path: Path, what: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise SwitchError(f"TLS: cannot read {what} {path}: {e.strerror or e}") from e

        root = read(self.ca_cert, "CA certificate")
        key = read(self.client_key, "client key") if self.client_key else None
        chain = read(self.client_cert, "client certificate") if self.client_cert else None
        return grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=chain
        )


def _split_host(address: str) -> str | None:
    """Host part of a gRPC target ``host:port`` / ``[v6]:port`` / ``ipv4:host:port``.

    Returns None for unix-domain targets (``unix:/path``), which are local.
    """
    addr = address.strip()
    if addr.startswith(("unix:", "unix-abstract:")):
        return None
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        if addr.startswith(scheme):
            addr = addr[len(scheme):]
            break
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 else addr[1:]
    if addr.count(":") == 1:
        return addr.rsplit(":", 1)[0]
    return addr  # bare host, or bare IPv6 without port


def is_loopback_address(address: str) -> bool:
    """True if a gRPC target stays on this host (127.0.0.0/8, ::1, localhost, unix:).

    Names other than ``localhost`` are not resolved: a name could resolve
    anywhere, and we refuse plaintext on a guess.
    """
    host = _split_host(address)
    if host is None:
        return True
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
