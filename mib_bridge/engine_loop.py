"""Shutting down a pysnmp engine that runs on its own asyncio loop (the
agent's and the mediation device's inform receiver alike)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def close(engine, loop: asyncio.AbstractEventLoop) -> None:
    """Close the engine's transports (its sockets), then the loop, with no task left pending."""
    try:
        if engine is not None and engine.transport_dispatcher is not None:
            engine.close_dispatcher()
    except Exception:
        log.debug("closing the SNMP transports", exc_info=True)
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
