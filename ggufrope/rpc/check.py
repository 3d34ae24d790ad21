"""Each worker judged against this build's RPC protocol: the one place `build --workers`,
`worker probe` and the launch checks get their verdicts from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ggufrope.errors import WorkerError
from ggufrope.rpc.endpoint import Endpoint
from ggufrope.rpc.probe import DEFAULT_TIMEOUT, WorkerInfo, probe_all
from ggufrope.rpc.version import ProtoVersion, compatibility


@dataclass(frozen=True)
class WorkerCheck:
    endpoint: Endpoint
    verdict: str                    # same | patch | incompatible | unreachable | unchecked
    message: str
    info: WorkerInfo | None = None

    @property
    def blocking(self) -> bool:
        """llama.cpp cannot use the worker (it does not answer, or it refuses its protocol)."""
        return self.verdict in ("incompatible", "unreachable")

    def to_dict(self) -> dict:
        d = {"endpoint": str(self.endpoint), "verdict": self.verdict, "message": self.message}
        if self.info is not None:
            d.update(protocol=str(self.info.version), devices=len(self.info.devices), free=self.info.free,
                     total=self.info.total)
        return d


def judge(ep: Endpoint, answer: WorkerInfo | WorkerError, local: ProtoVersion | None) -> WorkerCheck:
    if isinstance(answer, WorkerError):
        return WorkerCheck(ep, "unreachable", str(answer).split(": ", 1)[-1])
    if local is None:
        return WorkerCheck(ep, "unchecked", f"RPC protocol {answer.version}; this build's is unknown", answer)
    verdict, why = compatibility(local, answer.version)
    return WorkerCheck(ep, verdict, why, answer)


def check_workers(eps: Sequence[Endpoint], local: ProtoVersion | None,
                  timeout: float = DEFAULT_TIMEOUT) -> list[WorkerCheck]:
    """Probe every worker at once and judge each answer."""
    return [judge(ep, r, local) for ep, r in zip(eps, probe_all(eps, timeout))]


def first_blocking(checks: Sequence[WorkerCheck]) -> WorkerError | None:
    bad = [c for c in checks if c.blocking]
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return WorkerError(f"RPC worker {bad[0].endpoint}: {bad[0].message}{more}")
