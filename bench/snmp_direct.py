"""An MD-side SNMPv3 client kept open for a benchmark's baseline, run in the MD's namespace.

    python -m bench.snmp_direct MD_TOML

(copies to the MD's first [content] listen address)

Lines on stdin, one answer line each on stdout:

    add CCCID MEDIA_ADDR:PORT ...  -> provisions CCCID on those media endpoints
                                      (RTP PORT and RTCP PORT+1, both ways, as the
                                      MD's SIP function would); prints time.time()
                                      of its first SET
    remove CCCID                   -> tears it down; prints "removed CCCID"
    held                           -> the content IDs the IAP holds, space separated

One session for the whole run, its engine discovery done before the first
clock starts: the baseline pays what provisioning by hand costs (the SETs,
the IAP, the switch), not a process start, as the MD's keeper pays none.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mediation.config import load
from mediation.keeper import client_for
from mediation.sip_parse import MediaEndpoint

LIFETIME = timedelta(seconds=600)


def endpoints(specs: list[str]) -> list:
    """The filters of each "address:port" media endpoint."""
    out = []
    for spec in specs:
        address, port = spec.rsplit(":", 1)
        out += MediaEndpoint(address, int(port), int(port) + 1).filters()
    return out


def main(argv: list[str]) -> None:
    config = load(Path(argv[0]))
    streams: dict[int, int] = {}
    with client_for(config.iap) as client:
        client.uptime()  # the SNMPv3 engine discovery, before any clock starts
        print("ready", flush=True)
        for line in sys.stdin:
            word, *args = line.split()
            if word == "add":
                cccid, filters = int(args[0]), endpoints(args[1:])
                start = time.time()
                client.provision(cccid, config.listen[0].host, config.listen[0].port,
                                 datetime.now(timezone.utc) + LIFETIME, filters)
                streams[cccid] = len(filters)
                print(start, flush=True)
            elif word == "remove":
                client.remove(int(args[0]), streams.pop(int(args[0])))
                print(f"removed {args[0]}", flush=True)
            elif word == "held":
                print(" ".join(str(c) for c in sorted(client.intercepts())), flush=True)
            else:
                raise SystemExit(f"unknown command {line.strip()!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
