"""A minimal stand-in for ``zse_infer.serve.app:create_app`` (same factory signature), used by the
Ray Serve tests where the real ``zse serve`` app is not in the tree. Not the product's server."""

from __future__ import annotations

import base64
import os


def create_app(export_dir, gallery, *, retriever=None, **options):
    from fastapi import FastAPI, HTTPException

    from ..errors import ZseError
    from ..runtime.retriever import Retriever

    r = retriever if retriever is not None else Retriever.load(export_dir, gallery=gallery, **options)
    app = FastAPI()

    @app.post("/v1/search")
    def search(body: dict):
        try:
            hits = r.search(base64.b64decode(body["sketch"]), k=int(body.get("k", 10)), rerank=body.get("rerank"))
        except ZseError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"hits": [{"rank": h.rank, "id": h.id, "score": h.score, "stage": h.stage, "row": h.row} for h in hits]}

    @app.get("/v1/replica")
    def replica():
        return {"pid": os.getpid(), "batch_sizes": list(getattr(r, "batch_sizes", []))}

    return app
