"""A minimal agency collector for ETSI TS 102 232 over TCP, for labs and tests:
it accepts the MD's connections, answers every keep-alive, and appends every
other PS-PDU to a file in libtrace's `etsifile` form (PDUs back to back), so
`tracepktdump etsifile:FILE` reads what it received.

It answers a keep-alive only once everything before it is written and fsynced:
the MD frees its spool on that answer, so a collector killed at any moment has
lost nothing the MD will not send again.

    python -m mediation.etsi_collector --listen 127.0.0.1:9003 --out received.etsi
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import threading
import time

from controller.toml_fields import endpoint
from mediation import etsi

RESPONDER = etsi.Identity(etsi.KEEPALIVE_LIID, "agency", "collector")


class Collector:
    def __init__(self, host: str, port: int, out: str, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                           reuse_port=False)
        self.out = open(out, "ab")
        self.lock = threading.Lock()
        self.records = self.keepalives = 0

    def serve_forever(self) -> None:
        while True:
            conn, _ = self.server.accept()
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError) as error:
                    print(f"TLS handshake refused: {error}", file=sys.stderr, flush=True)
                    conn.close()
                    continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        inbox = bytearray()
        with conn:
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    return
                inbox += chunk
                for pdu in etsi.split(inbox):
                    value = etsi.decode(pdu)
                    if value["payload"] == ("tRIPayload", ("keep-alive", 0)):
                        with self.lock:
                            self.out.flush()
                            os.fsync(self.out.fileno())
                            self.keepalives += 1
                        seq = value["pSHeader"]["sequenceNumber"]
                        conn.sendall(etsi.encode_keepalive(RESPONDER, seq, time.time(), response=True))
                    else:
                        with self.lock:
                            self.out.write(pdu)
                            self.records += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--out", required=True, help="file the PS-PDUs are appended to")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", help="... and its key")
    parser.add_argument("--tls-client-ca", help="and require an MD certificate signed by this CA")
    args = parser.parse_args(argv)
    where = endpoint(args.listen, "--listen")
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.load_verify_locations(args.tls_client_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    collector = Collector(where.host, where.port, args.out, tls)
    print(f"listening on port {collector.server.getsockname()[1]}", flush=True)
    collector.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
