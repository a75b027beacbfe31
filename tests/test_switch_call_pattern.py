"""How SwitchConnection loads a switch's P4Runtime server (issue 27): one unary
RPC in flight per connection however many threads call it, and a stream
ended by half-closing it, not by cancelling it.

The server is a real gRPC server (grpcio, in this process) whose servicer
records what it saw: how many unary calls ran at once, and how each stream
ended. bmv2's own server cannot be asked either, which is why this is not on
bmv2; the soak (bench/iap_soak.py) and the recovery test run the real switch.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from p4protos import p4runtime_pb2 as p4r
from p4protos import p4runtime_pb2_grpc

from controller.switch import SwitchConnection

HOLD = 0.05  # seconds each fake Read takes, so that concurrent calls would overlap


class RecordingServicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    """Answers arbitration with "primary" and Reads with nothing; records
    the most Reads that ran at once and how each stream ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.reads = 0
        self.endings: list[str] = []  # "half-closed" or "cancelled", per stream
        self.ended = threading.Condition(self.lock)

    def Read(self, request, context):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(HOLD)
            yield p4r.ReadResponse()
        finally:
            with self.lock:
                self.running -= 1
                self.reads += 1

    def StreamChannel(self, request_iterator, context):
        try:
            for request in request_iterator:
                if request.HasField("arbitration"):
                    reply = p4r.StreamMessageResponse()
                    reply.arbitration.CopyFrom(request.arbitration)
                    reply.arbitration.status.code = 0
                    yield reply
            how = "half-closed" if context.is_active() else "cancelled"
        except grpc.RpcError:
            how = "cancelled"
        with self.lock:
            self.endings.append(how)
            self.ended.notify_all()


@pytest.fixture
def server():
    servicer = RecordingServicer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        srv.stop(grace=None)


def test_reads_from_many_threads_reach_the_server_one_at_a_time(server):
    servicer, address = server
    with SwitchConnection(address) as conn:
        threads = [threading.Thread(target=conn.read_table_entries) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert servicer.reads == 8
    assert servicer.most == 1, f"{servicer.most} Reads ran at once on the server"


def test_close_half_closes_the_stream_and_the_server_ends_it(server):
    servicer, address = server
    conn = SwitchConnection(address)
    conn.connect()
    assert conn.is_primary
    conn.close()
    with servicer.ended:
        assert servicer.ended.wait_for(lambda: servicer.endings, timeout=10)
    assert servicer.endings == ["half-closed"]
