"""A real S3 endpoint on this machine (tests/support/s3.py): moto's server on 127.0.0.1, one
per test session, a fresh bucket per test. The standard ``AWS_*`` variables carry the
credentials (as on a cluster); the endpoint goes in ``storage_options``, so a test can also pass
a wrong one."""

from __future__ import annotations

import pytest

pytest.importorskip("moto.server", reason="the object-storage tests need moto[server] (the dev extra)")
pytest.importorskip("boto3")

from tests.support.s3 import S3, isolate, local_server, new_bucket


@pytest.fixture(scope="session")
def s3_endpoint():
    mp = pytest.MonkeyPatch()
    isolate(mp)
    yield from local_server()
    mp.undo()


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> S3:
    return new_bucket(s3_endpoint, monkeypatch)
