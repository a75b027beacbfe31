"""The ETSI handover over TLS (mediation/etsi_delivery.py): the MD checks the
collector's certificate against the agency's CA and shows its own; an MD that
trusts another CA hands nothing over and keeps it spooled."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mediation.etsi_delivery import EtsiDelivery, TlsSettings
from tests.test_etsi_handover import (CCCID, ROOT, agency, assert_complete_and_in_order, drained, packet,
                                      received, wait_for)


def _certificate(directory: Path, name: str, issuer=None) -> tuple[Path, Path, object, object]:
    """A certificate for 127.0.0.1 (self-signed, or signed by `issuer` = (cert, key))."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
            .sign(issuer_key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert, key


def test_tls_handover_checks_the_collector_and_shows_it_ours(tmp_path):
    ca_pem, _, ca_cert, ca_key = _certificate(tmp_path, "agency-ca")
    server_pem, server_key, _, _ = _certificate(tmp_path, "collector", (ca_cert, ca_key))
    md_pem, md_key, _, _ = _certificate(tmp_path, "md", (ca_cert, ca_key))
    out = tmp_path / "rx.etsi"
    proc = subprocess.Popen([sys.executable, "-m", "mediation.etsi_collector", "--listen", "127.0.0.1:0", "--out",
                             str(out), "--tls-cert", str(server_pem), "--tls-key", str(server_key),
                             "--tls-client-ca", str(ca_pem)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[-1])
    good = EtsiDelivery(agency(tmp_path, port, tls=TlsSettings(ca=ca_pem, cert=md_pem, key=md_key)))
    # An MD that trusts some other CA must not hand anything over to this collector.
    (tmp_path / "other").mkdir()
    other_ca, _, _, _ = _certificate(tmp_path / "other", "other-ca")
    wrong = EtsiDelivery(agency(tmp_path, port, spool_dir=tmp_path / "wrong", tls=TlsSettings(ca=other_ca)))
    try:
        for i in range(100):
            good.deliver(time.time(), CCCID, packet(i))
            wrong.deliver(time.time(), CCCID, packet(i))
        wait_for(lambda: drained(good), "the TLS handover to drain")
        wait_for(lambda: wrong.status()["hi3"]["last_error"] is not None, "the wrong CA to be refused")
        assert "certificate verify failed" in wrong.status()["hi3"]["last_error"]
        assert wrong.spools["hi3"].pending_records() == 100 and wrong.status()["hi3"]["connects"] == 0
        assert "TCP+TLS" in good.describe()
    finally:
        good.close()
        wrong.close()
        proc.kill()
        proc.wait()
    assert_complete_and_in_order(received(out), 100)
