"""A real S3 endpoint on this machine for tests: moto's standalone server on 127.0.0.1
(``moto[server]``, in the dev extra). Nothing leaves 127.0.0.1: the instance-metadata lookup is
disabled and the machine's own AWS configuration is hidden."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

KEY_ID, SECRET, REGION = "zse-test-key", "zse-test-secret", "us-east-1"

#: variables that would point at real credentials, config or endpoints
HIDDEN = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@dataclass
class S3:
    """One bucket on the local server."""

    endpoint: str
    bucket: str

    @property
    def options(self) -> dict[str, str]:
        """storage_options that reach this server (credentials from the environment)."""
        return {"aws_endpoint": self.endpoint, "allow_http": "true", "aws_region": REGION}

    @property
    def options_with_keys(self) -> dict[str, str]:
        """storage_options that carry the credentials too (for processes started before the
        test set the variables: a Ray cluster's workers)."""
        return {**self.options, "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}

    def uri(self, name: str = "g") -> str:
        return f"s3://{self.bucket}/{name}"

    def client(self):
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def isolate(mp) -> None:
    """``mp``: a pytest MonkeyPatch. No credentials or config of the machine's user, no metadata service."""
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/zse-test-credentials")
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent/zse-test-config")
    for name in HIDDEN:
        mp.delenv(name, raising=False)


def local_server() -> Iterator[str]:
    """Run moto's server on 127.0.0.1 (a free port) and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def new_bucket(endpoint: str, mp) -> S3:
    """A fresh bucket, with the test credentials in the AWS_* variables (``mp``: MonkeyPatch)."""
    isolate(mp)
    mp.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    mp.setenv("AWS_REGION", REGION)
    store = S3(endpoint, f"zse-{secrets.token_hex(6)}")
    store.client().create_bucket(Bucket=store.bucket)
    return store
