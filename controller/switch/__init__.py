"""One P4Runtime client per switch device, on the p4runtime protos over grpcio.

Why not p4runtime-shell's ``P4RuntimeClient``?  It keeps one process-wide
client, and calls ``sys.exit`` when something goes wrong.  A tap controller
manages several switches at once and must survive a switch that restarts or a
primary role that moves to another controller, so every failure here is an
exception (a subclass of :class:`SwitchError`) that names the switch, the
operation and the gRPC status, and the controller decides what to do.

Design notes:

* The StreamChannel is the P4Runtime session: the arbitration update sent on it
  decides which controller is *primary* (only the primary may write).
  :meth:`SwitchConnection.connect` waits for the switch's arbitration reply
  before returning, because bmv2 (PI) races if a pipeline is pushed before the
  stream is registered.
* A reader thread follows the stream for the life of the connection: later
  arbitration updates (primary lost or regained), packet-ins, digests and the
  end of the stream.  Controllers learn about changes through
  :meth:`SwitchConnection.on_state_change` callbacks or the
  :attr:`SwitchConnection.state_changed` event, so they can back off and
  reconcile instead of writing into a switch that no longer accepts them.
* One unary RPC at a time per connection (`_rpc_lock`), beside the stream,
  and the stream ended by half-closing it (the server then ends it) rather
  than by cancelling it while the server may be writing on it. bmv2's P4Runtime
  server (PI's sync gRPC server) died under the IAP in a sync-server worker
  (issue 27; README, Toolchain); nothing shows that the calls' pattern causes
  it, but a controller needs no concurrency on one switch, and a client that
  keeps to what every server handles (no parallel unary calls, no cancelled
  stream writes) is not the one exercising a server's rarest paths.
* Plaintext gRPC is only allowed to loopback (or when explicitly asked for):
  RFC 3924 §2.2 wants the intercept configuration to travel over an
  authenticated, encrypted link, and the intercept tables are exactly the
  sensitive state it is talking about.

The client is put together from one part per concern, each a module that
imports only from those below it: :mod:`.errors` < :mod:`.transport` (TLS,
loopback) < :mod:`.session` (state, RPC errors) < :mod:`.stream` (connect,
arbitration, reader thread, packet-out), :mod:`.pipeline_config`,
:mod:`.writes` (batching), :mod:`.reads` < :class:`SwitchConnection` here.
"""

from __future__ import annotations

# Everything the single module exported is still importable from controller.switch
# (decode_write_errors, StateCallback and Atomicity included).
from .errors import NotPrimaryError, SwitchError, SwitchUnavailableError, WriteError, decode_write_errors
from .pipeline_config import PipelineConfig
from .reads import Reads
from .session import StateCallback, StreamState
from .stream import Stream
from .transport import TlsConfig, is_loopback_address
from .writes import DEFAULT_BATCH_SIZE, Atomicity, Writes

__all__ = [
    "SwitchError",
    "SwitchUnavailableError",
    "NotPrimaryError",
    "WriteError",
    "TlsConfig",
    "StreamState",
    "SwitchConnection",
    "is_loopback_address",
    "DEFAULT_BATCH_SIZE",
]


class SwitchConnection(Stream, PipelineConfig, Writes, Reads):
    """P4Runtime session with one device of one switch.

    Typical use::

        with SwitchConnection("127.0.0.1:9559", device_id=0, election_id=(0, 1)) as sw:
            if not sw.is_primary:
                ...  # another controller is primary
            sw.set_pipeline(p4info, bmv2_json)
            sw.write([update, ...])

    Thread-safety: unary RPCs may be issued from several threads; they are sent
    one at a time (the next waits for the previous to finish). The stream is
    owned by an internal reader thread.  Callbacks registered with
    :meth:`on_state_change` run on that reader thread and must not block.
    """
