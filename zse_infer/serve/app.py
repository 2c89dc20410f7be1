"""The FastAPI app: routes under /v1, probes, metrics, the API docs and the sketch pad page at /."""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import re
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

from ..errors import require

fastapi = require("fastapi", "serve", "zse serve")
from fastapi import Depends, Query, Request  # noqa: E402 - after the check that names the extra
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

from ..runtime.indexer import COMMIT_SIZE  # noqa: E402
from . import schemas  # noqa: E402
from .batcher import Job  # noqa: E402
from .errors import CatchAll, ServeError, bad_request, forbidden, install_handlers, unsupported  # noqa: E402
from .images import check_image, sniff  # noqa: E402
from .photos import keep_upload, open_stored, read_stored  # noqa: E402
from .settings import ServeSettings  # noqa: E402
from .state import SearchJob, ServerState, photo_url, resolve_rerank  # noqa: E402
from .uploads import ClientLimits, HostCheck, check_write_origin, content_type, read_json, read_upload, upload_name  # noqa: E402

_log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_ERRORS = {s: {"model": schemas.ErrorBody} for s in (401, 403, 404, 409, 410, 413, 415, 422, 503, 504)}
_BINARY = {"type": "string", "format": "binary"}
_FORM = {"type": "object", "required": ["sketch"], "properties": {"sketch": _BINARY, "id": {"type": "string"}}}
_JSON_BODY = schemas.ImageBody.model_json_schema()
_IMAGE_TYPES = {"multipart/form-data": _FORM, "application/json": _JSON_BODY, "image/png": _BINARY}
_IMAGE_BODY = {"requestBody": {"required": True, "content": {t: {"schema": s} for t, s in _IMAGE_TYPES.items()}}}
#: What a stored photo is served with: never run as a page, whatever its bytes hold.
PHOTO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, max-age=300",
}
#: The sketch pad runs only its own script, shows only its own and fetched (blob:) images; no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_RERANK_HELP = (
    "candidates reranked by the relation head: an integer up to the server's --max-rerank, 0 (stage 1 only), "
    "'all' (galleries no larger than that), or empty for the export's default"
)
#: /docs is added by add_offline_docs, from local files
ASSETS = "/docs-assets"
_ABOUT = "Zero-shot sketch-based image retrieval: search a photo gallery with a drawing."
__all__ = ["create_app", "photo_url"]


def _parse_rerank(value: str | None) -> int | str | None:
    if value in (None, "", "all"):
        return value or None
    if not re.fullmatch(r"\d{1,9}", value):
        raise bad_request(f"rerank: received {value[:20]!r}, expected an integer >= 0 or 'all'")
    return int(value)


def _check_ids(ids: list[str] | None, photos: int) -> None:
    """Client ids: one per photo, distinct, printable, 1-512 characters, not '@...'; checked before any commit."""
    if not ids:
        return
    if len(ids) != photos:
        raise bad_request(f"ids: received {len(ids)} ids for {photos} photos")
    if len(set(ids)) != len(ids):
        raise bad_request("ids: the same id given twice")
    for i in ids:
        if not i or len(i) > 512 or re.search(r"[\x00-\x1f\x7f]", i) or i.startswith("@"):
            expected = "expected 1 to 512 printable characters, not starting with '@'"
            raise bad_request(f"ids: received {i[:40]!r}, {expected}")


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
        title=settings.title, version="1", lifespan=lifespan, docs_url=None, redoc_url=None, description=_ABOUT
    )
    app.state.zse = state
    install_handlers(app, settings.retry_after_s, state.redact)

    async def authorized(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            message = "missing or wrong token: send 'Authorization: Bearer <token>'"
            raise ServeError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})

    async def writes_allowed(request: Request) -> None:
        if not settings.allow_writes:
            raise forbidden("this server is read-only: start it with --allow-writes to change the gallery")
        check_write_origin(request.headers, settings)

    v1 = fastapi.APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses=_ERRORS)

    @v1.post(
        "/search",
        response_model=schemas.SearchResponse,
        openapi_extra=_IMAGE_BODY,
        summary="The k best gallery photos for a sketch",
    )
    async def search(
        request: Request,
        k: int = Query(settings.default_k, ge=1, le=settings.max_k, description="results to return"),
        rerank: str | None = Query(None, description=_RERANK_HELP),
    ):
        t0 = time.perf_counter()
        depth = resolve_rerank(retriever, _parse_rerank(rerank), settings.max_rerank)
        upload = await read_upload(request, "sketch", settings.max_upload_bytes)
        rgb, decode_ms = await state.decode_sketch(upload)
        try:
            result, waited, batch_size = await state.batcher.submit(SearchJob(rgb, k, depth))
        except ServeError as exc:
            state.metrics.rejected.labels({503: "queue_full", 504: "timeout"}.get(exc.status, "other")).inc()
            raise
        timing = {"queue": waited * 1000, "decode": decode_ms, **result.timing_ms}
        timing["total"] = (time.perf_counter() - t0) * 1000
        state.metrics.observe_stages(timing)
        hits, timing_ms = [state.hit(h) for h in result.hits], {stage: round(ms, 3) for stage, ms in timing.items()}
        return schemas.SearchResponse(hits=hits, timing_ms=timing_ms, k=k, rerank=depth, batch_size=batch_size)

    @v1.post(
        "/explain",
        openapi_extra=_IMAGE_BODY,
        summary="Why a sketch matches a gallery photo (JSON, or PNG with Accept: image/png)",
        responses={200: {"content": {"application/json": {}, "image/png": {}}}},
    )
    async def explain(request: Request):
        upload = await read_upload(request, "sketch", settings.max_upload_bytes, text_fields=("id",))
        photo_id = upload.fields.get("id")
        if not photo_id:
            raise bad_request("id: missing, expected the gallery id of the photo to explain")
        photo = state.photos.require(photo_id)
        rgb, _ = await state.decode_sketch(upload)
        photo_bytes = await state.in_decoders(read_stored, photo, state.limits)
        want_png = "image/png" in request.headers.get("accept", "")

        def run():
            if not want_png:
                return retriever.explain(rgb, photo_bytes)
            with tempfile.TemporaryDirectory(prefix="zse-explain-") as tmp:
                out = Path(tmp) / "explanation.png"
                return retriever.explain(rgb, photo_bytes, out=out), out.read_bytes()

        result = await state.on_model(run)
        if want_png:
            return Response(result[1], media_type="image/png", headers={"X-Relation-Score": f"{result[0].score:.6f}"})
        return JSONResponse({"id": photo.public_id, **result.to_dict()})

    @v1.get(
        "/photos/{photo_id:path}",
        summary="A gallery photo's bytes (gallery ids only)",
        responses={200: {"content": {"image/*": {}}}},
    )
    async def get_photo(photo_id: str):
        # Only gallery ids, with the file indexed: the request never becomes a path ("../" is just an unknown id).
        photo = state.photos.require(photo_id)

        def open_checked():
            f, size = open_stored(photo)
            return f, size, sniff(f)

        f, size, fmt = await state.in_decoders(open_checked)
        headers = {**PHOTO_HEADERS, "Content-Length": str(size)}
        if fmt is None:  # not an image format the server knows: a download, never a page
            headers["Content-Disposition"] = "attachment"
        media_type = fmt.media_type if fmt else "application/octet-stream"
        return StreamingResponse(_chunks(state, f), media_type=media_type, headers=headers)

    @v1.post(
        "/photos",
        response_model=schemas.PhotosAdded,
        dependencies=[Depends(writes_allowed)],
        summary="Index uploaded photos (multipart 'photos', optional 'ids') or server-side paths (JSON)",
    )
    async def add_photos(request: Request):
        ctype = content_type(request)
        if ctype == "application/json":
            body = await read_json(request, schemas.PathsBody)
            sources, ids = await state.in_decoders(_check_paths, body.paths), body.ids
            _check_ids(ids, len(sources))
        elif ctype == "multipart/form-data":
            sources, ids = await _save_uploads(request)
        else:
            raise unsupported(f"Content-Type: received {ctype!r}, expected multipart/form-data or application/json")
        job = Job()

        def run():
            # In commits of COMMIT_SIZE photos, stopping between them once the request timed
            # out (504): what was committed stays, and posting again continues after it.
            added = skipped = 0
            for start in range(0, len(sources), COMMIT_SIZE):
                if job.abandoned.is_set():
                    break
                part_ids = ids[start : start + COMMIT_SIZE] if ids else None
                report = retriever.index(sources[start : start + COMMIT_SIZE], ids=part_ids, progress=False)
                added, skipped = added + report.added, skipped + report.skipped_existing
            state.update_photos()
            return added, skipped

        added, skipped = await state.on_model(run, job=job)
        public = [state.photos.public_id(g, s) for g, s in zip(ids or sources, sources, strict=False)]
        return schemas.PhotosAdded(added=added, skipped_existing=skipped, gallery_size=len(state.photos), ids=public)

    def _check_paths(paths: list[str]) -> list[str]:
        """Server-side paths -> checked image files (inside a --photo-root, through the image gate)."""
        if not state.roots.roots:
            raise forbidden("this server indexes no server-side paths: start it with --photo-root DIR")
        if not paths:
            raise bad_request("paths: empty, expected server-side files or folders inside a --photo-root")
        files = state.roots.expand(paths)
        for f in files:
            with open(f, "rb") as fh:
                data = fh.read(state.limits.max_bytes + 1)
            check_image(data, f"photo {state.roots.relative(f)!r}", state.limits)
        return files

    async def _save_uploads(request: Request) -> tuple[list[str], list[str]]:
        form = await request.form(max_files=256, max_fields=256, max_part_size=64 * 1024)
        files = [f for f in form.getlist("photos") if not isinstance(f, str)]
        given = [i for i in form.getlist("ids") if isinstance(i, str)]
        if not files:
            raise bad_request("multipart field 'photos': missing, expected one or more image files")
        _check_ids(given, len(files))
        folder = settings.upload_dir
        if folder is None:
            raise forbidden("uploads need an upload folder: start the server with --upload-dir")

        def keep(data: bytes, name: str) -> Path:
            fmt = check_image(data, name, state.limits)  # the whole image decoded, within the limits
            folder.mkdir(parents=True, exist_ok=True)
            return keep_upload(folder, data, fmt.suffix)

        paths = [await state.in_decoders(keep, await f.read(), upload_name(f.filename, "photos")) for f in files]
        return [str(p) for p in paths], given or [f"upload/{p.stem}" for p in paths]

    @v1.delete(
        "/photos/{photo_id:path}",
        response_model=schemas.PhotoDeleted,
        dependencies=[Depends(writes_allowed)],
        summary="Remove a photo from the gallery",
        responses={501: {"model": schemas.ErrorBody}},
    )
    async def delete_photo(photo_id: str):
        delete = getattr(retriever, "delete", None)
        if delete is None:
            raise ServeError(501, "not_implemented", "this gallery cannot delete photos")
        photo = state.photos.require(photo_id)

        def run():
            delete([photo.gallery_id])
            state.update_photos()

        await state.on_model(run)
        return schemas.PhotoDeleted(deleted=photo.public_id, gallery_size=len(state.photos))

    app.include_router(v1)

    @app.get("/healthz", response_model=schemas.Health, summary="The process is alive")
    async def healthz():
        return schemas.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=schemas.Health,
        summary="The model is loaded and warmed up",
        responses={503: {"model": schemas.ErrorBody}},
    )
    async def readyz():
        if not state.ready:
            raise ServeError(503, "not_ready", "the model is still warming up", {"Retry-After": "1"})
        detail = {"gallery_size": len(state.photos), "backend": retriever.backend, "max_batch": settings.max_batch}
        detail.update(max_rerank=settings.max_rerank, writes=settings.allow_writes)
        return schemas.Health(status="ready", detail=detail)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics():
        data, ctype = state.metrics.render()
        return Response(data, media_type=ctype)

    page_html = (STATIC / "index.html").read_text(encoding="utf-8")
    if settings.try_drawing:  # tell people what the gallery holds, so they draw something that is there
        names = html.escape(", ".join(settings.try_drawing))
        hint = f'<p id="try" class="hint">Try drawing: {names}.</p>'
        page_html = page_html.replace('<p id="try" class="hint" hidden></p>', hint)

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(page_html, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_offline_docs(app)
    _add_middleware(app, state, settings)
    return app


def add_offline_docs(app) -> None:
    """``/docs`` (Swagger UI) from ``fastapi-offline``'s files, offline (no ``/redoc``: it loads a logo from a CDN)."""
    offline = require("fastapi_offline", "serve", "zse serve's /docs page")
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount(ASSETS, StaticFiles(directory=Path(offline.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request):
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )


async def _chunks(state: ServerState, f, size: int = 256 * 1024):
    """A stored photo's bytes, read in the decode pool; the file is closed however the response ends."""
    loop = asyncio.get_running_loop()
    try:
        while chunk := await loop.run_in_executor(state.decoders, f.read, size):
            yield chunk
    finally:
        f.close()


def _add_middleware(app, state: ServerState, settings: ServeSettings) -> None:
    """Outermost first: errors caught, Host checked, metrics (route templates as labels), body limits, CORS."""
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

    # add_middleware puts each one outside those added before it
    if settings.cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            expose_headers=["Retry-After", "X-Relation-Score"],
        )
    app.add_middleware(ClientLimits, max_upload_bytes=settings.max_upload_bytes, body_timeout_s=settings.body_timeout_s)
    app.add_middleware(Measure)
    if settings.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(CatchAll)
