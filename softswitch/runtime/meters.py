"""Indirect meters (``MeterEntry``) and the MeterConfig rules direct meters share."""

from __future__ import annotations

from typing import Any

from p4protos import p4runtime_pb2 as p4v1

from ..externs import MeterArray
from .base import U32, U64, C, _cells, _err
from .counters import Counters


class Meters(Counters):
    """MeterEntry writes and reads; MeterConfig validation and conversion (over :class:`Counters`)."""

    @staticmethod
    def _validate_meter(cfg: p4v1.MeterConfig) -> None:
        if cfg.cir < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter CIR")
        if cfg.cburst < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter CBurst")
        if cfg.pir < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter PIR")
        if cfg.pburst < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter PBurst")
        if cfg.cburst > U32:
            raise _err(C.UNIMPLEMENTED, "CBurst too large")
        if cfg.pburst > U32:
            raise _err(C.UNIMPLEMENTED, "Pburst too large")

    @staticmethod
    def _set_meter(meter: Any, cfg: p4v1.MeterConfig | None) -> None:
        if cfg is None or (cfg.cir == -1 and cfg.cburst == -1 and cfg.pir == -1 and cfg.pburst == -1):
            meter.reset()
            return
        cir, pir = cfg.cir & U64, cfg.pir & U64
        cb, pb = cfg.cburst & U32, cfg.pburst & U32
        if not meter.set_rates([(cir / 1e6, cb), (pir / 1e6, pb)]):
            raise _err(C.UNKNOWN, "Error when writing meter spec")

    @staticmethod
    def _meter_config(meter: Any) -> p4v1.MeterConfig | None:
        rates = meter.get_rates()
        if not rates:
            return None
        (cr, cb), (pr, pb) = rates
        cfg = p4v1.MeterConfig(cir=int(cr * 1e6), pir=int(pr * 1e6))
        cfg.cburst = -1 if cb == U32 else cb
        cfg.pburst = -1 if pb == U32 else pb
        return cfg

    def _meter_update_config(self, utype: int, entry: p4v1.MeterEntry | p4v1.DirectMeterEntry) -> p4v1.MeterConfig | None:
        """The config a meter write sets (None: unconfigured), checked as PI does for indirect
        and direct meters alike: a meter is only ever modified."""
        self._check_update_type(utype)
        if utype == p4v1.Update.INSERT:
            raise _err(C.INVALID_ARGUMENT, "INSERT update type not supported for meters")
        if utype == p4v1.Update.DELETE:
            raise _err(C.INVALID_ARGUMENT, "DELETE update type not supported for meters")
        cfg = None
        if entry.HasField("config"):
            self._validate_meter(entry.config)
            cfg = entry.config
        return cfg

    def _meter_write(self, utype: int, me: p4v1.MeterEntry) -> None:
        self._check_cell_write(me.meter_id, me, "meter")
        cfg = self._meter_update_config(utype, me)
        arr: MeterArray = self.index.meters[me.meter_id]
        if me.index.index >= arr.size:
            raise _err(C.UNKNOWN, "Error when writing meter spec")
        self._set_meter(arr.meters[me.index.index], cfg)

    def _meter_read(self, me: p4v1.MeterEntry, out: list) -> None:
        for mid in self._read_ids(me.meter_id, "meter", self.index.meter_order):
            arr: MeterArray = self.index.meters[mid]
            for i in _cells(me, arr.size, "Error when reading meter spec from target"):
                e = p4v1.MeterEntry(meter_id=mid)
                e.index.index = i
                cfg = self._meter_config(arr.meters[i])
                if cfg is not None:
                    e.config.CopyFrom(cfg)
                out.append(p4v1.Entity(meter_entry=e))
