"""Importing Ray lazily (a missing Ray is one DependencyError naming the ``ray`` extra), connecting to a cluster."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any

from ..errors import InputError, require

_log = logging.getLogger(__name__)


def ray_module(purpose: str = "running on Ray"):
    """``import ray`` (with Ray Data), or a DependencyError naming the extra ``ray``."""
    ray = require("ray", "ray", purpose)
    require("ray.data", "ray", purpose)  # ray without [data] lacks pandas & co.
    return ray


def connect(address: str | None = None, num_cpus: int | None = None, purpose: str = "running on Ray") -> float:
    """Connect to Ray once, returning the seconds it took (0 if connected). ``address``: ``None`` joins ``RAY_ADDRESS``
    or a local ``ray start``, else starts one (``num_cpus`` caps it); ``"auto"`` needs one; ``"ray://HOST:10001"``."""
    ray = ray_module(purpose)
    if ray.is_initialized():
        return 0.0
    if address is not None and not str(address).strip():
        raise InputError("ray_address: received an empty string, expected e.g. 'auto' or 'ray://HEAD:10001'")
    started = time.perf_counter()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus  # only a local cluster started here can be sized
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise InputError(f"ray_address: received {address!r}, but no Ray cluster answered there ({exc})") from exc
    seconds = time.perf_counter() - started
    _log.info("connected to Ray in %.1f s: %s", seconds, ray.cluster_resources())
    return seconds


def default_actors(gpus_per_actor: float, cpus_per_actor: float) -> int:
    """One actor per GPU; on CPUs, one per ``cpus_per_actor`` CPUs, keeping one CPU for the decoding tasks."""
    res = ray_module().cluster_resources()
    if gpus_per_actor:
        return max(1, int(res.get("GPU", 0) // gpus_per_actor))
    return max(1, int((res.get("CPU", 1) - 1) // max(cpus_per_actor, 1e-9)))


def actor_pool(ray, size: int, options) -> dict[str, Any]:
    """``map_batches`` options: one row at a time, as Arrow, on ``size`` actors with ``options``' resources."""
    pool = {"batch_size": 1, "batch_format": "pyarrow", "compute": ray.data.ActorPoolStrategy(size=size)}
    return {**pool, "num_gpus": options.gpus_per_actor or None, "num_cpus": options.cpus_per_actor}


def job_failed(job: str, exc: BaseException) -> str:
    """'the Ray <job> job failed (<error type>: <the last line of its message>)'."""
    text = str(exc).strip().splitlines()
    return f"the Ray {job} job failed ({type(exc).__name__}: {text[-1] if text else type(exc).__name__})"


@contextmanager
def ordered_quiet_data(ray):
    """Ray Data in input order (results and commits as in one process), no progress bars of its own; then restored."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, False
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
