"""p4tap-softswitch: a software P4 switch that runs p4c's bmv2 JSON as bmv2's
``simple_switch_grpc`` does, with a P4Runtime server, so p4tap's data plane
runs (and its PTF suite passes) where bmv2 is not installed.

Modules:

* ``program``  -- loads the bmv2 JSON and compiles it into Python functions
* ``tables``   -- match tables (exact / LPM / ternary / range / optional)
* ``externs``  -- counters, meters, registers
* ``hashes``   -- bmv2's hash and checksum algorithms
* ``switch``   -- v1model / simple_switch packet path, PRE, clone sessions
* ``queues``   -- egress priority queues (depth, rate, strict priority)
* ``thrift``   -- bmv2's Thrift calls that set queue depths and rates
* ``p4info``   -- binds the P4Info to the compiled program
* ``runtime``  -- P4Runtime device manager (PI's DeviceMgr semantics)
* ``server``   -- gRPC P4Runtime service, arbitration, packet I/O stream
* ``ports``    -- AF_PACKET interfaces
* ``cli``      -- the simple_switch_grpc-shaped command line
"""

__version__ = "1.0.0-p4tap"
