"""llama.cpp RPC workers: endpoints, the wire probe (HELLO, device count, device memory), the
protocol version of a llama.cpp tree, and the worker process. Knows nothing of presets."""
from ggufrope.rpc.check import WorkerCheck, check_workers, first_blocking, judge
from ggufrope.rpc.endpoint import Endpoint, parse_endpoint, parse_endpoints
from ggufrope.rpc.probe import DeviceMemory, WorkerInfo, probe, probe_all
from ggufrope.rpc.version import ProtoVersion, compatibility, source_proto_version

__all__ = ["WorkerCheck", "check_workers", "first_blocking", "judge", "Endpoint", "parse_endpoint", "parse_endpoints", "DeviceMemory", "WorkerInfo", "probe", "probe_all",
           "ProtoVersion", "compatibility", "source_proto_version"]
