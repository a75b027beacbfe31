"""Registers (``RegisterEntry``): writes and reads, which PI leaves UNIMPLEMENTED on bmv2 and this switch serves."""

from __future__ import annotations

from p4protos import p4runtime_pb2 as p4v1

from .base import INVALID_ID, C, DeviceBase, _err, bytes_to_int, int_to_bytes


class Registers(DeviceBase):
    """RegisterEntry writes and reads."""

    def _register_write(self, utype: int, re_: p4v1.RegisterEntry) -> None:
        if not self.index.valid_id(re_.register_id, "register"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        self._check_update_type(utype)
        if utype != p4v1.Update.MODIFY:
            raise _err(C.INVALID_ARGUMENT, "Only MODIFY is supported for registers")
        arr = self.index.registers[re_.register_id]
        value = 0
        if re_.data.WhichOneof("data") == "bitstring":
            value = bytes_to_int(re_.data.bitstring, arr.bitwidth)
        elif re_.HasField("data"):
            raise _err(C.INVALID_ARGUMENT, "Register data must be a bitstring")
        if re_.HasField("index"):
            i = re_.index.index
            if not 0 <= i < arr.size:
                raise _err(C.OUT_OF_RANGE, "Register index out of range")
            arr.values[i] = value
        else:
            arr.values = [value] * arr.size

    def _register_read(self, re_: p4v1.RegisterEntry, out: list) -> None:
        for rid in self._read_ids(re_.register_id, "register", self.index.register_order):
            arr = self.index.registers[rid]
            if re_.HasField("index"):
                i = re_.index.index
                if not 0 <= i < arr.size:
                    raise _err(C.OUT_OF_RANGE, "Register index out of range")
                cells = [i]
            else:
                cells = range(arr.size)
            for i in cells:
                e = p4v1.RegisterEntry(register_id=rid)
                e.index.index = i
                e.data.bitstring = int_to_bytes(arr.values[i], arr.bitwidth)
                out.append(p4v1.Entity(register_entry=e))
