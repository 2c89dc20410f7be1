"""The FastAPI app: routes under /v1, probes, metrics, and the sketch pad page at /.

``create_app(retriever, settings)`` builds it around an already loaded
``Retriever``; the CLI (``zse serve``) and the tests start it with uvicorn.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import mimetypes
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..errors import require

fastapi = require("fastapi", "serve", "zse serve")
from fastapi import Depends, Query, Request  # noqa: E402 - after the check that names the extra
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

from . import schemas  # noqa: E402
from .batcher import Batcher
from .decode import decode_sketch
from .errors import ServeError, bad_request, install_handlers, not_found, timed_out
from .metrics import ServeMetrics
from .photos import PhotoTable, inside
from .search import SearchJob, resolve_rerank, run_search_batch
from .settings import ServeSettings
from .uploads import BodyLimit, read_upload

_log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_ERRORS = {s: {"model": schemas.ErrorBody} for s in (401, 403, 404, 413, 415, 422, 503, 504)}
_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["sketch"],
                           "properties": {"sketch": {"type": "string", "format": "binary"}, "id": {"type": "string"}}}
            },
            "application/json": {"schema": schemas.ImageBody.model_json_schema()},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def photo_url(photo_id: str) -> str:
    return "/v1/photos/" + quote(photo_id, safe="")


def _parse_rerank(value: str | None) -> int | str | None:
    if value is None or value == "":
        return None
    if value == "all":
        return "all"
    if not re.fullmatch(r"\d{1,9}", value):
        raise bad_request(f"rerank: received {value!r}, expected an integer >= 0 or 'all'")
    return int(value)


def _warm_sketch() -> np.ndarray:
    """A white square with a dark diagonal: enough ink to run every graph once."""
    img = np.full((64, 64, 3), 255, np.uint8)
    for i in range(8, 56):
        img[i, i - 1 : i + 2] = 0
    return img


class ServerState:
    def __init__(self, retriever, settings: ServeSettings):
        self.retriever = retriever
        self.settings = settings
        self.ready = False
        self.photos = PhotoTable()
        # The one thread that touches the Retriever (see the package docstring), and the decoders.
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="zse-model")
        self.decoders = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="zse-decode")
        self.metrics = ServeMetrics(gallery_size=lambda: len(self.photos), queue_depth=lambda: self.batcher.depth)
        self._refreshed = time.monotonic()
        self.batcher = Batcher(
            self._search_batch, self.model_thread, settings.max_batch, settings.max_delay_ms,
            settings.max_queue, settings.timeout_s, settings.retry_after_s, on_batch=self.metrics.batch_size.observe,
        )

    def _search_batch(self, jobs):
        """On the model thread: first pick up other writers' commits (other replicas, a
        ``zse index`` beside the server) at most every ``refresh_s`` seconds, then search."""
        if self.settings.refresh_s and time.monotonic() - self._refreshed >= self.settings.refresh_s:
            self._refreshed = time.monotonic()
            refresh = getattr(self.retriever, "refresh", None)
            if refresh is not None and refresh():
                self.photos.refresh(self.retriever)
        return run_search_batch(self.retriever, jobs)

    async def on_model(self, fn, *args):
        """Run ``fn`` on the model thread, answering 504 if it does not finish in time."""
        future = asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)
        try:
            return await asyncio.wait_for(future, self.settings.timeout_s)
        except asyncio.TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise timed_out(self.settings.timeout_s) from None

    async def decode(self, upload) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        cfg = self.retriever.manifest.preprocess["sketch"]
        rgb = await asyncio.get_running_loop().run_in_executor(
            self.decoders, decode_sketch, upload.data, upload.name, cfg, self.settings.max_pixels
        )
        return rgb, (time.perf_counter() - t0) * 1000

    def warm_up(self) -> None:
        r = self.retriever
        self.photos.refresh(r)
        if len(r):
            run_search_batch(r, [SearchJob(_warm_sketch(), 1, resolve_rerank(r, None))])
        else:
            r.encode([_warm_sketch()], "sketch")

    def close(self) -> None:
        self.model_thread.shutdown(wait=False, cancel_futures=True)
        self.decoders.shutdown(wait=False, cancel_futures=True)


def create_app(retriever, settings: ServeSettings):
    state = ServerState(retriever, settings)

    @asynccontextmanager
    async def lifespan(app):
        state.batcher.start()

        async def warm():
            try:
                await asyncio.get_running_loop().run_in_executor(state.model_thread, state.warm_up)
                state.ready = True
                _log.info("model warmed up; ready")
            except Exception:  # noqa: BLE001 - /readyz stays 503 and says why in the log
                _log.exception("warm-up failed")

        warming = asyncio.create_task(warm())
        yield
        warming.cancel()
        await state.batcher.stop()
        state.close()

    app = fastapi.FastAPI(
        title=settings.title, version="1", lifespan=lifespan,
        description="Zero-shot sketch-based image retrieval: search a photo gallery with a drawing.",
    )
    app.state.zse = state
    install_handlers(app)

    async def authorized(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise ServeError(401, "unauthorized", "missing or wrong token: send 'Authorization: Bearer <token>'",
                             {"WWW-Authenticate": "Bearer"})

    def writes_allowed() -> None:
        if not settings.allow_writes:
            raise ServeError(403, "forbidden", "this server is read-only: start it with --allow-writes to change the gallery")

    v1 = fastapi.APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses=_ERRORS)

    # ------------------------------------------------------------------ search
    @v1.post("/search", response_model=schemas.SearchResponse, openapi_extra=_IMAGE_BODY,
             summary="The k best gallery photos for a sketch")
    async def search(
        request: Request,
        k: int = Query(settings.default_k, ge=1, le=settings.max_k, description="results to return"),
        rerank: str | None = Query(None, description="candidates reranked by the relation head: an integer, 0 (stage 1 only), "
                                                     "'all', or empty for the export's default"),
    ):
        t0 = time.perf_counter()
        depth = resolve_rerank(retriever, _parse_rerank(rerank))
        upload = await read_upload(request, "sketch", settings.max_upload_bytes)
        rgb, decode_ms = await state.decode(upload)
        try:
            result, waited, batch_size = await state.batcher.submit(SearchJob(rgb, k, depth))
        except ServeError as exc:
            state.metrics.rejected.labels({503: "queue_full", 504: "timeout"}.get(exc.status, "other")).inc()
            raise
        timing = {"queue": waited * 1000, "decode": decode_ms, **result.timing_ms}
        timing["total"] = (time.perf_counter() - t0) * 1000
        state.metrics.observe_stages(timing)
        hits = [schemas.SearchHit(rank=h.rank, id=h.id, score=h.score, stage=h.stage, photo_url=photo_url(h.id)) for h in result.hits]
        return schemas.SearchResponse(hits=hits, timing_ms={k_: round(v, 3) for k_, v in timing.items()}, k=k, rerank=depth,
                                      batch_size=batch_size)

    # ------------------------------------------------------------------ explain
    @v1.post("/explain", openapi_extra=_IMAGE_BODY, summary="Why a sketch matches a gallery photo (JSON, or PNG with Accept: image/png)",
             responses={200: {"content": {"application/json": {}, "image/png": {}}}})
    async def explain(request: Request):
        upload = await read_upload(request, "sketch", settings.max_upload_bytes, text_fields=("id",))
        photo_id = upload.fields.get("id")
        if not photo_id:
            raise bad_request("id: missing, expected the gallery id of the photo to explain")
        path = state.photos.path(photo_id)
        if photo_id not in state.photos:
            raise not_found(f"photo id {photo_id!r}: not in the gallery")
        if path is None or not os.path.isfile(path):
            raise not_found(f"photo id {photo_id!r}: its file is not available on the server")
        rgb, _ = await state.decode(upload)
        want_png = "image/png" in request.headers.get("accept", "")

        def run():
            if not want_png:
                return retriever.explain(rgb, path)
            with tempfile.TemporaryDirectory(prefix="zse-explain-") as tmp:
                out = Path(tmp) / "explanation.png"
                exp = retriever.explain(rgb, path, out=out)
                return exp, out.read_bytes()

        result = await state.on_model(run)
        if want_png:
            return Response(result[1], media_type="image/png", headers={"X-Relation-Score": f"{result[0].score:.6f}"})
        return JSONResponse({"id": photo_id, **result.to_dict()})

    # ------------------------------------------------------------------ photos
    @v1.get("/photos/{photo_id:path}", summary="A gallery photo's bytes (gallery ids only)",
            responses={200: {"content": {"image/*": {}}}})
    async def get_photo(photo_id: str):
        # Only ids the gallery holds are answered, with the path the gallery stored: the request
        # never becomes a path, so "../", absolute paths and encoded tricks are just unknown ids.
        if photo_id not in state.photos:
            raise not_found(f"photo id {photo_id!r}: not in the gallery")
        path = state.photos.path(photo_id)
        if path is None or not os.path.isfile(path):
            raise not_found(f"photo id {photo_id!r}: its file is not available on the server (indexed from memory, or moved)")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"})

    @v1.post("/photos", response_model=schemas.PhotosAdded, dependencies=[Depends(writes_allowed)],
             summary="Index uploaded photos (multipart 'photos', optional 'ids') or server-side paths (JSON)")
    async def add_photos(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = schemas.PathsBody.model_validate_json(await request.body())
            roots = settings.photo_roots
            for p in body.paths:
                if not roots or not inside(p, roots):
                    raise ServeError(403, "forbidden", f"path {p!r}: outside the server's --photo-root folders {[str(r) for r in roots]}")
            sources, ids = body.paths, body.ids
        elif ctype == "multipart/form-data":
            sources, ids = await _save_uploads(request)
        else:
            raise ServeError(415, "unsupported_media_type", f"Content-Type: received {ctype!r}, expected multipart/form-data or application/json")

        def run():
            report = retriever.index(sources, ids=ids, progress=False)
            state.photos.refresh(retriever)
            return report

        report = await state.on_model(run)
        return schemas.PhotosAdded(added=report.added, skipped_existing=report.skipped_existing,
                                   ids=list(ids) if ids else [str(s) for s in sources], gallery_size=len(state.photos))

    async def _save_uploads(request: Request) -> tuple[list[str], list[str]]:
        form = await request.form(max_files=256, max_fields=256, max_part_size=64 * 1024)
        files = [f for f in form.getlist("photos") if not isinstance(f, str)]
        given = [i for i in form.getlist("ids") if isinstance(i, str)]
        if not files:
            raise bad_request("multipart field 'photos': missing, expected one or more image files")
        if given and len(given) != len(files):
            raise bad_request(f"ids: received {len(given)} ids for {len(files)} photos")
        folder = settings.upload_dir
        if folder is None:
            raise ServeError(403, "forbidden", "uploads need an upload folder: start the server with --upload-dir")
        folder.mkdir(parents=True, exist_ok=True)
        paths, ids = [], []
        for i, f in enumerate(files):
            data = await f.read()
            if len(data) > settings.max_upload_bytes:
                raise ServeError(413, "payload_too_large", f"photo {f.filename!r}: {len(data)} bytes, expected at most {settings.max_upload_bytes}")
            digest = hashlib.sha256(data).hexdigest()[:16]
            suffix = Path(f.filename or "").suffix.lower()
            suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
            path = folder / f"{digest}{suffix}"  # named by content: never by the client's file name
            if not path.exists():
                path.write_bytes(data)
            paths.append(str(path))
            ids.append(given[i] if given else f"upload/{digest}")
        return paths, ids

    @v1.delete("/photos/{photo_id:path}", response_model=schemas.PhotoDeleted, dependencies=[Depends(writes_allowed)],
               summary="Remove a photo from the gallery", responses={501: {"model": schemas.ErrorBody}})
    async def delete_photo(photo_id: str):
        delete = getattr(retriever, "delete", None)
        if delete is None:
            raise ServeError(501, "not_implemented", "this gallery cannot delete photos yet (the Retriever has no delete(); "
                                                     "it comes with the Lance gallery)")
        if photo_id not in state.photos:
            raise not_found(f"photo id {photo_id!r}: not in the gallery")

        def run():
            delete([photo_id])
            state.photos.refresh(retriever)

        await state.on_model(run)
        return schemas.PhotoDeleted(deleted=photo_id, gallery_size=len(state.photos))

    app.include_router(v1)

    # ------------------------------------------------------------------ probes, metrics, page
    @app.get("/healthz", response_model=schemas.Health, summary="The process is alive")
    async def healthz():
        return schemas.Health(status="ok")

    @app.get("/readyz", response_model=schemas.Health, summary="The model is loaded and warmed up",
             responses={503: {"model": schemas.ErrorBody}})
    async def readyz():
        if not state.ready:
            raise ServeError(503, "not_ready", "the model is still warming up", {"Retry-After": "1"})
        return schemas.Health(status="ready", detail={"gallery_size": len(state.photos), "backend": retriever.backend,
                                                      "max_batch": settings.max_batch, "writes": settings.allow_writes})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics():
        data, ctype = state.metrics.render()
        return Response(data, media_type=ctype)

    page_html = (STATIC / "index.html").read_text(encoding="utf-8")
    if settings.try_drawing:  # tell people what the gallery holds, so they draw something that is there
        names = html.escape(", ".join(settings.try_drawing))
        page_html = page_html.replace('<p id="try" class="hint" hidden></p>', f'<p id="try" class="hint">Try drawing: {names}.</p>')

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(page_html)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_middleware(app, state, settings)
    return app


def _add_middleware(app, state: ServerState, settings: ServeSettings) -> None:
    """Metrics around everything (route templates as labels, not raw paths), body limits, CORS."""
    metrics = state.metrics

    class Measure:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            t0, status = time.perf_counter(), [500]

            async def capture(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await self.inner(scope, receive, capture)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.requests.labels(route, scope["method"], str(status[0])).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - t0)

    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Accept"], expose_headers=["Retry-After", "X-Relation-Score"])
    app.add_middleware(BodyLimit, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(Measure)
