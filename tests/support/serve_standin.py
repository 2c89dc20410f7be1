"""A minimal stand-in for ``zse_infer.serve.app:create_app`` (same factory signature), used by the
Ray Serve tests to check the deployment machinery on its own. Not the product's server: it sends
its searches through ``retriever.search`` (so Ray Serve's ``@serve.batch`` collects them) and
reports which process answered."""

from __future__ import annotations

import base64
import os
import time


def create_app(retriever, settings=None):
    from fastapi import FastAPI, HTTPException

    from zse_infer.errors import ZseError

    app = FastAPI()

    @app.post("/v1/search")
    def search(body: dict):
        try:
            sketch = base64.b64decode(body["sketch"])
            hits = retriever.search(sketch, k=int(body.get("k", 10)), rerank=body.get("rerank"))
        except ZseError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"hits": [{"rank": h.rank, "id": h.id, "score": h.score, "stage": h.stage, "row": h.row} for h in hits]}

    @app.get("/v1/replica")
    def replica():
        # Slow on purpose: concurrent calls then queue up, and Ray Serve's queue-length routing
        # spreads them over the replicas (sequential calls may all go to one).
        time.sleep(0.2)
        return {"pid": os.getpid(), "batch_sizes": list(getattr(retriever, "batch_sizes", []))}

    return app
