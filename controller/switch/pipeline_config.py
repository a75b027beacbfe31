"""Pushing and reading back the forwarding pipeline, and the switch's API version."""

from __future__ import annotations

import grpc
from p4protos import p4info_pb2
from p4protos import p4runtime_pb2

from .session import Session


class PipelineConfig(Session):
    """SetForwardingPipelineConfig, GetForwardingPipelineConfig, Capabilities (over :class:`Session`)."""

    def set_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, cookie: int | None = None) -> None:
        """Push a P4 program (VERIFY_AND_COMMIT): P4Info plus the target config (bmv2 JSON)."""
        stub = self._require_stub("SetForwardingPipelineConfig")
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            election_id=self._uint128(),
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
        )
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = bytes(device_config)
        if cookie is not None:
            req.config.cookie.cookie = cookie
        try:
            with self._rpc_lock:
                stub.SetForwardingPipelineConfig(req, timeout=self.rpc_timeout)
        except grpc.RpcError as e:
            raise self._rpc_error("SetForwardingPipelineConfig", e) from None

    def get_pipeline(
        self,
        response_type: int = p4runtime_pb2.GetForwardingPipelineConfigRequest.ALL,
    ) -> p4runtime_pb2.ForwardingPipelineConfig:
        """The switch's current pipeline; use COOKIE_ONLY / P4INFO_AND_COOKIE to skip the big device config."""
        stub = self._require_stub("GetForwardingPipelineConfig")
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=self.device_id, response_type=response_type)
        try:
            with self._rpc_lock:
                return stub.GetForwardingPipelineConfig(req, timeout=self.rpc_timeout).config
        except grpc.RpcError as e:
            raise self._rpc_error("GetForwardingPipelineConfig", e) from None

    def capabilities(self) -> str:
        """The P4Runtime API version the switch implements (e.g. '1.3.0')."""
        stub = self._require_stub("Capabilities")
        try:
            with self._rpc_lock:
                return stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(),
                                         timeout=self.rpc_timeout).p4runtime_api_version
        except grpc.RpcError as e:
            raise self._rpc_error("Capabilities", e) from None
