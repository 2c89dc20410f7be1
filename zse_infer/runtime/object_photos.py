"""Photos on object storage (``s3://bucket/prefix/``: every image below it; ``s3://bucket/key``: one object), read
with boto3 (the ``s3`` extra) and the gallery's ``storage_options``; ids, fingerprints and errors: docs/cluster.md."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import PreprocessConfig
from ..errors import ImageError, ImageNotFoundError, InputError, ZseError, require
from ..preprocess import ImageSource, describe_source, load_image, source_path
from .gallery.location import URI_SCHEME
from .photo_sources import IMAGE_EXTENSIONS

THREADS = 16  #: objects looked up (HEAD) or read at once


@dataclass(frozen=True)
class ObjectPhoto:
    """One object to index: its URI, size and ETag as listed, or why it cannot be read."""

    uri: str
    size: int = -1
    etag: str = ""
    error: str | None = None

    @property
    def fingerprint(self) -> tuple[int, int] | None:  # (size, 63-bit hash of the ETag)
        if self.error is not None:
            return None
        return (self.size, int.from_bytes(hashlib.sha256(self.etag.encode()).digest()[:8], "big") >> 1)


def parse_uri(source: Any) -> tuple[str, str] | None:
    """(bucket, key) of an ``s3://`` URI; None for a non-URI; InputError for another scheme (never a local 'gs:')."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    text = os.fsdecode(os.fspath(source))
    match = URI_SCHEME.match(text)
    if match is None:
        return None
    if match.group(1).lower() != "s3":
        raise InputError(f"{text}: received a {match.group(1)}:// URI, expected a local path or s3://BUCKET/KEY")
    bucket, _, key = text[match.end() :].partition("/")
    if not bucket:
        raise InputError(f"{text}: names no bucket; expected s3://BUCKET/PREFIX/ or s3://BUCKET/KEY")
    return bucket, key


def photo_path(source: ImageSource) -> str | None:
    """Where a worker elsewhere reads the photo (its URI or file path); None for in-memory images."""
    return source.uri if isinstance(source, ObjectPhoto) else source_path(source)


def photo_name(source: ImageSource) -> str:
    return source.uri if isinstance(source, ObjectPhoto) else describe_source(source)


def expand_objects(sources: Iterable[ImageSource], options: Mapping[str, str]) -> list[ImageSource]:
    """``sources``, each ``s3://`` URI replaced by its objects in key order (or an ObjectPhoto saying why not)."""
    sources = list(sources)
    parsed = [parse_uri(s) for s in sources]
    if not any(parsed):
        return sources
    client = s3_client(options)
    with ThreadPoolExecutor(THREADS) as pool:  # HEADs at once: round trips
        found = list(pool.map(lambda s, p: [s] if p is None else _objects(client, *p), sources, parsed))
    return [one for objects in found for one in objects]


def _objects(client, bucket: str, key: str) -> list[ObjectPhoto]:
    uri = f"s3://{bucket}/{key}"
    if key and not key.endswith("/"):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            return [ObjectPhoto(uri, int(head["ContentLength"]), head["ETag"].strip('"'))]
        except Exception as exc:  # noqa: BLE001 - classified below: a photo's fault is reported, not raised
            error = _failure(exc, uri)
            if not isinstance(error, ImageNotFoundError):
                return [ObjectPhoto(uri, error=error.reason)]
        # No such object: a prefix whose '/' the shell or click dropped ('s3://b/photos/' -> 's3:/b/photos')?
        listed = _list(client, bucket, key + "/", uri)
        return listed or [ObjectPhoto(uri, error="no such object (nor a prefix holding images)")]
    listed = _list(client, bucket, key, uri)
    if not listed:
        raise InputError(f"{uri}: no image objects under this prefix (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return listed


def _list(client, bucket: str, prefix: str, uri: str) -> list[ObjectPhoto]:
    try:
        pages = list(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
    except Exception as exc:  # noqa: BLE001 - a listing refused spoils the whole source: raised, named
        raise InputError(f"{uri}: cannot list the objects under this prefix ({_failure(exc, uri).reason})") from None
    objects = sorted((o for page in pages for o in page.get("Contents", [])), key=lambda o: o["Key"])
    images = [o for o in objects if os.path.splitext(o["Key"])[1].lower() in IMAGE_EXTENSIONS]
    return [ObjectPhoto(f"s3://{bucket}/{o['Key']}", int(o["Size"]), o["ETag"].strip('"')) for o in images]


def load_photo(source: ImageSource, config: PreprocessConfig, options: Mapping[str, str]) -> np.ndarray:
    """``load_image`` for any source, objects and ``s3://`` URIs included (errors name the URI)."""
    if not isinstance(source, ObjectPhoto) and parse_uri(source) is None:
        return load_image(source, config)
    uri = str(photo_path(source))
    if isinstance(source, ObjectPhoto) and source.error is not None:
        raise ImageError(uri, source.error)
    bucket, key = parse_uri(uri) or ("", "")
    try:
        data = s3_client(options).get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - classified: a ZseError naming the URI
        raise _failure(exc, uri) from None
    try:
        return load_image(data, config)
    except ImageError as exc:  # named '<bytes: N bytes>' by the decoder: name the object instead
        raise ImageError(uri, exc.reason) from None


def load_photos(sources: list, config: PreprocessConfig, options: Mapping[str, str]) -> list[np.ndarray | ZseError]:
    """:func:`load_photo` of each source or its ZseError; objects ``THREADS`` at once (serially: a starved encoder)."""

    def one(source: ImageSource) -> np.ndarray | ZseError:
        try:
            return load_photo(source, config, options)
        except ZseError as exc:
            return exc

    if not any(isinstance(s, ObjectPhoto) or parse_uri(s) for s in sources):
        return [one(s) for s in sources]
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, sources))


#: error codes that mean the credentials, not the object, are wrong
_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired")


def _failure(exc: Exception, uri: str) -> ImageError:
    """An object store's error as an ImageError naming the URI; configuration errors are raised as InputError."""
    from botocore import exceptions as be

    if isinstance(exc, be.ClientError):
        error = exc.response.get("Error", {})
        code, status = str(error.get("Code", "")), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "NotFound", "404"):
            return ImageNotFoundError(uri, "no such object")
        if code in _CREDENTIALS:
            raise InputError(f"{uri}: the object store refused the credentials ({code}); {_HOW}") from None
        if code == "NoSuchBucket":
            return ImageNotFoundError(uri, "no such bucket")
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            return ImageError(uri, "access denied (HTTP 403): check the credentials and the object's permissions")
        return ImageError(uri, f"cannot be read ({code or status}: {error.get('Message', '')})")
    if isinstance(exc, be.NoCredentialsError):
        raise InputError(f"{uri}: no credentials for the object store; {_HOW}") from None
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectTimeoutError)):
        raise InputError(f"{uri}: the object store does not answer ({exc}); check aws_endpoint") from None
    if isinstance(exc, be.BotoCoreError):
        return ImageError(uri, f"cannot be read ({exc})")
    raise exc


_HOW = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --storage-option aws_access_key_id=... (the gallery's options)"
)


def s3_client(options: Mapping[str, str]):
    # Keyed by the AWS_* variables too: boto3 reads credentials from them when the client is made.
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _cached_client(tuple(sorted((str(k).lower(), str(v)) for k, v in options.items())), env)


@functools.lru_cache(maxsize=8)
def _cached_client(options: tuple[tuple[str, str], ...], env: tuple[tuple[str, str], ...]):
    """A boto3 S3 client for Lance-style storage options (thread-safe; one per distinct options)."""
    boto3 = require("boto3", "s3", "reading photos from s3://")
    from botocore.config import Config

    opts = dict(options)

    def pick(*names: str) -> str | None:
        return next((opts[n] for n in names if opts.get(n)), None)

    retries = {"mode": "standard", "max_attempts": 3}
    style = "virtual" if pick("aws_virtual_hosted_style_request", "virtual_hosted_style_request") == "true" else None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=pick("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url"),
        region_name=pick("aws_region", "region", "aws_default_region"),
        aws_access_key_id=pick("aws_access_key_id", "access_key_id"),
        aws_secret_access_key=pick("aws_secret_access_key", "secret_access_key"),
        aws_session_token=pick("aws_session_token", "session_token", "token"),
        config=Config(retries=retries, max_pool_connections=THREADS, s3={"addressing_style": style} if style else None),
    )
