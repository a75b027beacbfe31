"""p4tap's committed pipeline on the softswitch, in this process: P4Runtime
writes go straight to the softswitch's device, frames straight into its
ports, and what it transmits is collected per port.

No veth pairs, no root, no gRPC: the same switch code (`softswitch.switch`,
`softswitch.runtime`) that `python -m softswitch` runs, fast enough for
property tests that send thousands of packets through several switches.
"""

from __future__ import annotations

from collections.abc import Iterable

from p4protos import p4runtime_pb2 as p4r

from controller.entries import EntryBuilder, inserts
from controller.pipeline import Pipeline
from controller.plan import InterceptPlan
from controller.topology import SwitchTopology
from softswitch.runtime import Device
from softswitch.switch import SimpleSwitch

# bmv2 drops a packet whose priority is not below the number of queues; ETS uses 1 and 2.
PRIORITY_QUEUES = 3


class P4tapRig:
    """One softswitch running p4tap with a topology's forwarding and ETS state."""

    def __init__(self, pipeline: Pipeline, topology: SwitchTopology) -> None:
        self.pipeline = pipeline
        self.builder = EntryBuilder(pipeline)
        self.switch = SimpleSwitch(priority_queues=PRIORITY_QUEUES)
        self.device = Device(0, self.switch)
        self.device.set_pipeline(p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
                                 p4r.ForwardingPipelineConfig(p4info=pipeline.p4info,
                                                              p4_device_config=pipeline.device_config))
        self._out: list[tuple[int, bytes]] = []
        self.switch.transmit = lambda port, data: self._out.append((port, bytes(data)))
        self.write(inserts(self.builder.forwarding_entities(topology)))  # ETS marks included

    def write(self, updates: Iterable[p4r.Update]) -> None:
        status = self.device.write(p4r.WriteRequest(updates=list(updates)))
        if status.code != 0:
            raise AssertionError(f"the softswitch refused a write: {status}")

    def install(self, plan: InterceptPlan) -> list[p4r.Entity]:
        entities = self.builder.intercept_entities(plan)
        self.write(inserts(entities))
        return entities

    def send(self, port: int, frame: bytes) -> dict[int, list[bytes]]:
        """Every frame the switch transmits for `frame` arriving on `port`, per
        port, sorted (the order of a packet's copies across ports is not part
        of what it does)."""
        self._out.clear()
        self.switch.receive(port, frame)
        self.switch.service()
        out: dict[int, list[bytes]] = {}
        for p, data in self._out:
            out.setdefault(p, []).append(data)
        return {p: sorted(frames) for p, frames in out.items()}
