"""``zse serve EXPORT_DIR --gallery DIR``: the search service (HTTP API, sketch pad page, metrics)."""

from __future__ import annotations

import click

from .common import EXISTING_FOLDER, FOLDER, ZseCommand, backend_option, gallery_option, verbosity

#: --help texts too long to sit on their option's line
_HELP = {
    "gallery": "Gallery folder or URI (s3://, gs://, az://) to search (created empty if missing; fill it with "
    "POST /v1/photos and --allow-writes).",
    "host": "Address to bind; 0.0.0.0 exposes the server to the network.",
    "max-batch": "Sketches encoded together, at most (1 = batching off). Default: 16.",
    "max-delay-ms": "How long the first search of a batch waits for others, once the last batch had company "
    "(a lone client never waits); 0: a batch is what queued while the model was busy.",
    "max-upload-mb": "Largest image the server reads: uploads, sketches, --photo-root files (413 above).",
    "max-rerank": "Deepest stage-2 rerank one request may ask for (422 beyond; 'all' only in galleries this small).",
    "max-connections": "Open connections at once; more are answered 503 at once. Slow clients are cut off "
    "(docs/serve-security.md).",
    "allowed-host": "A Host name to answer (repeatable). Default: loopback names when --host is loopback, any name "
    "otherwise.",
    "token": "Require 'Authorization: Bearer TOKEN' on /v1/* (or set ZSE_SERVE_TOKEN).",
    "allow-writes": "Enable POST /v1/photos and DELETE /v1/photos/{id} (403 otherwise). Without --token, browsers "
    "may write only from this server's pages and --cors origins.",
    "upload-dir": "Where uploaded photos are kept (default: GALLERY.uploads beside the gallery).",
    "photo-root": "A server folder POST /v1/photos may index paths from (repeatable; none by default). "
    "Hits of photos below it are named '<folder name>/<path>' over HTTP, others by an opaque id.",
    "threads": "CPU threads per model call (default: the backend's); 1 leaves cores to decoding and HTTP on busy "
    "machines.",
    "ray": "Serve on Ray Serve (the extra 'ray'): --replicas copies of this server, one runtime each, behind one port.",
    "gpus-per-replica": "With --ray: GPUs each replica asks Ray for (1 = one GPU each).",
    "ray-address": "With --ray: the cluster to join ('auto', 'ray://HEAD:10001'; default: RAY_ADDRESS or a local "
    "Ray). The export folder and gallery must be on a file system every node sees.",
}


def _number(name: str, type: click.ParamType, default: float, help: str):
    """A numeric option whose help shows its default (and its range)."""
    return click.option(name, type=type, default=default, show_default=True, help=help)


@click.command("serve", cls=ZseCommand)
@click.argument("export_dir", type=FOLDER)
@gallery_option(_HELP["gallery"], required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help=_HELP["host"])
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), help=_HELP["max-batch"])
@_number("--max-delay-ms", click.FloatRange(min=0), 5.0, _HELP["max-delay-ms"])
@_number("--max-queue", click.IntRange(min=1), 256, "Searches waiting beyond this are answered 503 with Retry-After.")
@_number("--timeout-s", click.FloatRange(min=0.001), 30.0, "Requests not answered by then get 504.")
@_number("--max-upload-mb", click.FloatRange(min=0.001), 10.0, _HELP["max-upload-mb"])
@_number("--max-rerank", click.IntRange(min=1), 1000, _HELP["max-rerank"])
@_number("--max-connections", click.IntRange(min=1), 512, _HELP["max-connections"])
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME", help=_HELP["allowed-host"])
@click.option("--token", envvar="ZSE_SERVE_TOKEN", help=_HELP["token"])
@click.option("--cors", multiple=True, metavar="ORIGIN", help="Allow browser calls from this origin (repeatable).")
@click.option("--allow-writes", is_flag=True, help=_HELP["allow-writes"])
@click.option("--upload-dir", type=FOLDER, help=_HELP["upload-dir"])
@click.option("--photo-root", "photo_roots", multiple=True, type=EXISTING_FOLDER, help=_HELP["photo-root"])
@backend_option
@click.option("--threads", type=click.IntRange(min=1), help=_HELP["threads"])
@click.option("--ray", "use_ray", is_flag=True, help=_HELP["ray"])
@_number("--replicas", click.IntRange(min=1), 2, "With --ray: replicas of the server.")
@_number("--gpus-per-replica", click.FloatRange(min=0), 0.0, _HELP["gpus-per-replica"])
@click.option("--ray-address", metavar="ADDR", help=_HELP["ray-address"])
def serve(
    export_dir,
    gallery_dir,
    storage_options,
    host,
    port,
    max_batch,
    max_upload_mb,
    allowed_hosts,
    token,
    upload_dir,
    backend,
    threads,
    use_ray,
    replicas,
    gpus_per_replica,
    ray_address,
    **knobs,  # options named as ServeSettings fields (max_delay_ms, cors, ...): passed on as they are (tuples)
) -> None:
    """Serve EXPORT_DIR and the gallery over HTTP: JSON API under /v1, a sketch pad at /, docs at /docs."""
    from ..errors import require
    from ..runtime.gallery.location import gallery_location
    from ..runtime.retriever import Retriever
    from ..serve import ServeSettings, run
    from ..serve.settings import auto_max_batch, startup_warnings

    require("fastapi", "serve", "zse serve")
    require("uvicorn", "serve", "zse serve")
    if not use_ray and (ray_address or gpus_per_replica):
        raise click.UsageError("--ray-address and --gpus-per-replica need --ray")
    if use_ray:  # the driver opens no model (each replica does); batching default as on one machine
        max_batch = max_batch or 16
    else:
        retriever = Retriever.load(
            export_dir, gallery_dir, create=True, backend=backend, threads=threads, storage_options=storage_options
        )
        max_batch = max_batch or auto_max_batch(retriever)
    if upload_dir is None and (local := gallery_location(gallery_dir).local) is not None:
        upload_dir = local.with_name(local.name + ".uploads")  # beside a local gallery (on object storage: none)
    settings = ServeSettings(
        max_batch=max_batch,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        token=token or None,
        upload_dir=upload_dir,
        allowed_hosts=tuple(allowed_hosts) or None,
        **knobs,
    )
    for warning in startup_warnings(settings, host):
        click.echo(f"warning: {warning}", err=True)
    url = f"http://{host}:{port}/  (API docs: /docs)"
    if not use_ray:
        batches = f"[{retriever.backend}, batches of up to {max_batch}]"
        click.echo(f"serving {len(retriever)} photos {batches} on {url}", err=True)
        run(retriever, settings, host=host, port=port, log_level="info" if verbosity() else "warning")
        return
    from ..distributed.ray_serve import serve_on_ray
    from ..distributed.runtime_spec import RuntimeSpec
    from ..manifest import Manifest
    from ..serve.server import effective_settings

    Manifest.load(export_dir, verify=True)  # fail here, not in every replica
    spec = RuntimeSpec(str(export_dir.absolute()), backend=backend, threads=threads or 1)  # one CPU share per replica
    where = f"{replicas} replica(s) of this server, batches of up to {max_batch}, on {url}"
    click.echo(f"serving {gallery_dir} on Ray Serve: {where}", err=True)
    serve_on_ray(
        export_dir,
        gallery_dir,
        replicas=replicas,
        host=host,
        port=port,
        address=ray_address,
        app_kwargs={"settings": effective_settings(settings, host)},
        spec=spec,
        gpus_per_replica=gpus_per_replica,
        cpus_per_replica=1.0,
        storage_options=storage_options,
    )
