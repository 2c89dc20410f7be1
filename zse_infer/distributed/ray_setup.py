"""Importing Ray lazily (a missing Ray is one DependencyError naming the ``ray`` extra) and
connecting to a cluster or starting a local one."""

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
    """Connect this process to Ray once; returns the seconds it took (0 if already connected).
    ``address``: ``None`` joins the cluster named by ``RAY_ADDRESS`` or started on this machine
    with ``ray start``, or else starts a local one (``num_cpus`` caps it); ``"auto"`` requires a
    running cluster; ``"ray://HOST:10001"`` is a Ray Client connection to a remote head node."""
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
    """One actor per GPU on a GPU cluster; on CPUs, one per ``cpus_per_actor`` CPUs, keeping one
    CPU for the decoding tasks that feed them."""
    res = ray_module().cluster_resources()
    if gpus_per_actor:
        return max(1, int(res.get("GPU", 0) // gpus_per_actor))
    return max(1, int((res.get("CPU", 1) - 1) // max(cpus_per_actor, 1e-9)))


@contextmanager
def ordered_quiet_data(ray):
    """Ray Data delivers rows in input order (so results and commits are those of one process)
    and shows no progress bars of its own (ours already counts); restored afterwards."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, False
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
