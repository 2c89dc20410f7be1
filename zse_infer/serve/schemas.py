"""Request and response models (they are also the OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    type: str = Field(
        description="machine-readable kind: invalid_image, blank_sketch, payload_too_large, not_found, ..."
    )
    message: str = Field(description="what was wrong, naming the field or file")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ImageBody(BaseModel):
    """A sketch sent as JSON instead of a multipart upload."""

    image: str = Field(description="the image file's bytes, base64 (a data: URL is accepted too)")
    id: str | None = Field(default=None, description="/v1/explain only: the gallery photo id")


class SearchHit(BaseModel):
    rank: int = Field(description="1 = best")
    id: str = Field(
        description="the photo's public id: the id it was indexed under, its path below the server's --photo-root "
        "('<root name>/<path>'), or an opaque '@<hex>' for other files; never a server path"
    )
    name: str = Field(description="the photo's file name (no folders), to show")
    score: float = Field(
        description="reranked score (0..1: the relation score, blended with the ret-token cosine where the export "
        "records search.blend) when stage == 2, ret-token cosine when stage == 1"
    )
    stage: int = Field(description="2: reranked by the relation head; 1: ranked by ret-token cosine only")
    photo_url: str = Field(description="GET this for the photo's bytes")


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    timing_ms: dict[str, float] = Field(description="queue, decode, encode, stage1, stage2, total (milliseconds)")
    k: int
    rerank: int | str
    batch_size: int = Field(description="sketches encoded together with this one")


class PhotosAdded(BaseModel):
    added: int
    skipped_existing: int
    ids: list[str] = Field(description="public ids of the photos, in the order given (folders expanded)")
    gallery_size: int


class PhotoDeleted(BaseModel):
    deleted: str
    gallery_size: int


class PathsBody(BaseModel):
    paths: list[str] = Field(description="server-side files or folders inside one of the server's --photo-root folders")
    ids: list[str] | None = Field(
        default=None, description="one id per file (folders then cannot be given); default: the files' public ids"
    )


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = {}
