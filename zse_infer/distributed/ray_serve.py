"""``zse serve --ray``: the ``zse serve`` app as a Ray Serve deployment, one runtime per replica (docs/ray.md)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DependencyError, InputError, ZseError, require
from ..runtime.gallery.location import gallery_location
from .ray_setup import connect
from .runtime_spec import RuntimeSpec

DEFAULT_APP = "zse_infer.serve.app:create_app"


def load_factory(import_path: str) -> Callable:
    """``"package.module:attribute"`` -> the callable (clear errors for a bad path)."""
    module_name, sep, attr = str(import_path).partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"app: received {import_path!r}, expected 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyError(f"app: cannot import {module_name!r} ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InputError(f"app: {module_name!r} has no callable {attr!r}")
    return factory


class BatchingRetriever:
    """A replica's Retriever whose searches are batched by ``@serve.batch``, all else delegated; a ``search_batch`` call
    made on the replica's event loop runs directly (waiting there would deadlock)."""

    def __init__(self, retriever, submit, loop: asyncio.AbstractEventLoop, batch_sizes: list[int]):
        self._retriever = retriever
        self._submit = submit  # async (sketch, k, rerank) -> hits, batched by @serve.batch
        self._loop = loop
        self.batch_sizes = batch_sizes  # sketches per model call so far (the replica appends)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._retriever, name)

    def __len__(self) -> int:  # special methods are looked up on the type, not through __getattr__
        return len(self._retriever)

    def search_batch(self, sketches, k: int = 10, rerank=None):
        if _on_loop(self._loop):
            return self._retriever.search_batch(sketches, k=k, rerank=rerank)
        futures = [asyncio.run_coroutine_threadsafe(self._submit((s, k, rerank)), self._loop) for s in sketches]
        return [_unwrap(f.result()) for f in futures]

    def search(self, sketch, k: int = 10, rerank=None):
        return self.search_batch([sketch], k=k, rerank=rerank)[0]


def _on_loop(loop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _unwrap(result):
    ok, value = result
    if not ok:
        raise value
    return value


def search_groups(retriever, items: list[tuple]) -> list[tuple[bool, Any]]:
    """One ``search_batch`` per distinct (k, rerank); a failing group is retried singly, so only a bad sketch fails."""
    results: list[tuple[bool, Any]] = [(False, None)] * len(items)
    groups: dict[tuple, list[int]] = {}
    for i, (_, k, rerank) in enumerate(items):
        groups.setdefault((k, rerank), []).append(i)
    for (k, rerank), members in groups.items():
        try:
            hits = retriever.search_batch([items[i][0] for i in members], k=k, rerank=rerank)
            for i, h in zip(members, hits, strict=False):
                results[i] = (True, h)
        except ZseError:
            for i in members:
                try:
                    results[i] = (True, retriever.search(items[i][0], k=k, rerank=rerank))
                except ZseError as exc:
                    results[i] = (False, exc)
    return results


def deployment_class():
    """The Ray Serve deployment class (built on demand: Ray is imported only here)."""
    serve = require("ray.serve", "ray", "serving on Ray Serve (zse serve --ray)")

    @serve.deployment
    @serve.ingress()
    class ZseReplica:
        async def __init__(  # type: ignore[misc]  # Ray Serve awaits an async constructor
            self,
            app_path: str,
            gallery: str | None,
            spec: RuntimeSpec,
            app_kwargs: dict,
            max_batch_size: int,
            wait_timeout_s: float,
            storage_options: dict[str, str],
        ):
            self.search_batched.set_max_batch_size(max_batch_size)
            self.search_batched.set_batch_wait_timeout_s(wait_timeout_s)
            self.batch_sizes: list[int] = []  # sketches per batched call (for tests and logs)
            factory = load_factory(app_path)
            retriever = await asyncio.to_thread(spec.retriever, gallery, storage_options)  # the replica's one runtime
            self.retriever = BatchingRetriever(
                retriever, self.search_batched, asyncio.get_running_loop(), self.batch_sizes
            )
            self._app = factory(self.retriever, **app_kwargs)

        def __serve_build_asgi_app__(self):
            return self._app

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        async def search_batched(self, items: list[tuple]) -> list[tuple[bool, Any]]:
            self.batch_sizes.append(len(items))
            # off the event loop, which collects the next batch (a Retriever may be shared by threads: no extra lock)
            return await asyncio.to_thread(search_groups, self.retriever._retriever, items)

    return ZseReplica


def build_app(
    export_dir: str,
    gallery: str | None,
    replicas: int = 2,
    app: str = DEFAULT_APP,
    app_kwargs: dict | None = None,
    spec: RuntimeSpec | None = None,
    cpus_per_replica: float = 1.0,
    gpus_per_replica: float = 0.0,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.01,
    storage_options: dict[str, str] | None = None,
):
    """A bound Ray Serve application: ``replicas`` copies of the app, one runtime each."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise InputError(f"replicas: received {replicas!r}, expected an integer >= 1")
    if max_batch_size < 1 or batch_wait_timeout_s < 0:
        got = f"{max_batch_size}/{batch_wait_timeout_s}"
        raise InputError(f"max_batch_size/batch_wait_timeout_s: received {got}, expected >= 1 / >= 0")
    load_factory(app)  # fail here, on the driver, rather than in every replica
    export_dir = str(Path(export_dir).absolute())
    # a folder (absolute: replicas run elsewhere) or an object-storage URI, parsed by the one parser
    gallery = gallery_location(gallery).uri if gallery is not None else None
    spec = spec or RuntimeSpec(export_dir, threads=max(1, int(cpus_per_replica)))
    if spec.export_dir != export_dir:
        raise InputError(f"spec: opens {spec.export_dir}, but export_dir is {export_dir}")
    actor_options = {"num_cpus": cpus_per_replica, **({"num_gpus": gpus_per_replica} if gpus_per_replica else {})}
    deployment = deployment_class().options(name="zse", num_replicas=replicas, ray_actor_options=actor_options)
    app_kwargs, storage_options = dict(app_kwargs or {}), dict(storage_options or {})
    return deployment.bind(app, gallery, spec, app_kwargs, max_batch_size, batch_wait_timeout_s, storage_options)


def serve_on_ray(
    export_dir,
    gallery,
    replicas: int = 2,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    blocking: bool = True,
    **kwargs,
) -> None:
    """Start Ray Serve (on ``address`` or a local Ray) with the app at ``http://host:port/``."""
    connect(address, purpose="serving on Ray Serve (zse serve --ray)")
    from ray import serve

    application = build_app(export_dir, gallery, replicas, **kwargs)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application, name="zse", route_prefix="/", blocking=blocking)
