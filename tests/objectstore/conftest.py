"""A real S3 endpoint on this machine: moto's standalone server (``ThreadedMotoServer``) on
127.0.0.1, one per test session, a fresh bucket per test. The standard ``AWS_*`` variables
carry the credentials (as on a cluster); the endpoint goes in ``storage_options`` (Lance's
``aws_endpoint`` + ``allow_http``), so a test can also pass a wrong one. Nothing leaves
127.0.0.1: the instance-metadata lookup is disabled and no real credentials are read."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

moto_server = pytest.importorskip("moto.server", reason="the object-storage tests need moto[server] (the dev extra)")
boto3 = pytest.importorskip("boto3")

KEY_ID, SECRET, REGION = "zse-test-key", "zse-test-secret", "us-east-1"


@dataclass
class S3:
    endpoint: str
    bucket: str

    @property
    def options(self) -> dict[str, str]:
        """storage_options that reach this server (credentials come from the environment)."""
        return {"aws_endpoint": self.endpoint, "allow_http": "true", "aws_region": REGION}

    def uri(self, name: str = "g") -> str:
        return f"s3://{self.bucket}/{name}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _isolate(mp: pytest.MonkeyPatch) -> None:
    """No credentials or config of the machine's user, no metadata service."""
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/zse-test-credentials")
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent/zse-test-config")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(name, raising=False)


@pytest.fixture(scope="session")
def s3_endpoint():
    mp = pytest.MonkeyPatch()
    _isolate(mp)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    mp.undo()


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> S3:
    """A fresh bucket on the session's server, credentials in the AWS_* variables."""
    _isolate(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", REGION)
    store = S3(s3_endpoint, f"zse-{secrets.token_hex(6)}")
    store.client().create_bucket(Bucket=store.bucket)
    return store
