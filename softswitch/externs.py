"""Stateful objects of a bmv2 program: counter, meter and register arrays."""

from __future__ import annotations

import time

__all__ = ["GREEN", "RED", "YELLOW", "CounterArray", "Meter", "MeterArray", "RegisterArray"]

GREEN, YELLOW, RED = 0, 1, 2


class CounterArray:
    """bmv2 counters always count packets and bytes (bytes = the packet's
    ingress length, as ``Counter::increment_counter`` does)."""

    def __init__(self, name: str, jid: int, size: int, is_direct: bool, binding: str | None) -> None:
        self.name, self.jid, self.size = name, jid, size
        self.is_direct, self.binding = is_direct, binding
        self.packets = [0] * (0 if is_direct else size)
        self.bytes = [0] * (0 if is_direct else size)

    def count(self, index: int, nbytes: int) -> None:
        # bmv2 release builds do not check the index; an out-of-range count is
        # dropped here rather than corrupting anything.
        if 0 <= index < self.size:
            self.packets[index] += 1
            self.bytes[index] += nbytes

    def reset(self) -> None:
        self.packets = [0] * len(self.packets)
        self.bytes = [0] * len(self.bytes)


class Meter:
    """A two-rate three-colour meter with bmv2's exact token arithmetic
    (``bm_sim/meters.cpp``): rates are kept peak first; tokens are computed
    against one time origin in microseconds."""

    __slots__ = ("configured", "packets", "rates", "t0")

    def __init__(self, packets: bool, t0: float) -> None:
        self.rates: list[list] = []  # [info_rate (units/us), burst, tokens, tokens_last, color]
        self.configured = False
        self.packets = packets
        self.t0 = t0

    def set_rates(self, configs: list[tuple[float, int]]) -> bool:
        """``configs`` = [(committed rate, burst), (peak rate, burst)] in units/us.
        Returns False when bmv2 would reject them (committed > peak)."""
        rates = []
        for idx, (rate, burst) in enumerate(configs):
            rates.append([rate, burst, burst, 0, idx + 1])
            if idx > 0 and configs[idx - 1][0] > rate:
                return False
        rates.reverse()
        self.rates = rates
        self.configured = True
        return True

    def reset(self) -> None:
        self.rates = []
        self.configured = False

    def get_rates(self) -> list[tuple[float, int]]:
        """As set: [(committed rate, burst), (peak rate, burst)]; [] if unconfigured."""
        if not self.configured:
            return []
        return [(r[0], r[1]) for r in reversed(self.rates)]

    def execute(self, nbytes: int, now: float | None = None) -> int:
        if not self.configured:
            return GREEN
        if now is None:
            now = time.monotonic()
        micros = int((now - self.t0) * 1_000_000)
        color = GREEN
        inp = 1 if self.packets else nbytes
        for rate in self.rates:
            since = int(micros * rate[0])
            new = since - rate[3]
            new = max(new, 0)
            rate[3] = since
            rate[2] = min(rate[2] + new, rate[1])
            if rate[2] < inp:
                color = rate[4]
                break
            rate[2] -= inp
        return color


class MeterArray:
    def __init__(self, name: str, jid: int, size: int, packets: bool, rate_count: int,
                 is_direct: bool, binding: str | None, result_target: int | None) -> None:
        self.name, self.jid, self.size = name, jid, size
        self.packets = packets
        self.rate_count = rate_count
        self.is_direct, self.binding = is_direct, binding
        self.result_target = result_target   # PHV slot for direct meters' colour
        self.t0 = time.monotonic()
        self.meters = [Meter(packets, self.t0) for _ in range(0 if is_direct else size)]

    def new_meter(self) -> Meter:
        return Meter(self.packets, self.t0)

    def reset(self) -> None:
        for m in self.meters:
            m.reset()


class RegisterArray:
    def __init__(self, name: str, jid: int, size: int, bitwidth: int) -> None:
        self.name, self.jid, self.size, self.bitwidth = name, jid, size, bitwidth
        self.mask = (1 << bitwidth) - 1
        self.values = [0] * size

    def reset(self) -> None:
        self.values = [0] * self.size
