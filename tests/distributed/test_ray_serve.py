import base64
import importlib
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever

pytestmark = pytest.mark.ray

REAL_APP = "zse_infer.serve.app:create_app"
STANDIN_APP = "tests.support.serve_standin:create_app"


@pytest.fixture(scope="module")
def gallery(tiny_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    r = Retriever.load(tiny_export, gallery=root / "g", create=True)
    r.index(make_photo_files(root / "photos", 40, size=32), progress=False)
    return root / "g"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(golden_images):
    sketches = [base64.b64encode(p.read_bytes()).decode() for p in golden_images["sketch"][:4]]
    return [{"sketch": s, "k": 5, "rerank": rerank} for s in sketches for rerank in (0, 10)]


@pytest.fixture
def on_ray_serve(ray_cluster):
    """Start an app on Ray Serve (2 replicas, half a CPU each); yields its base URL maker."""
    serve = pytest.importorskip("ray.serve")
    from zse_infer.distributed.ray_serve import build_app

    def start(app_path, export_dir, gallery_dir, **app_kwargs):
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            build_app(
                export_dir,
                gallery_dir,
                replicas=2,
                app=app_path,
                app_kwargs=app_kwargs,
                cpus_per_replica=0.5,
                batch_wait_timeout_s=0.2,
            ),
            name="zse",
            route_prefix="/",
            blocking=False,
        )
        return f"http://127.0.0.1:{port}"

    yield start
    serve.shutdown()


def test_two_replicas_answer_like_one_process(on_ray_serve, tiny_export, gallery, golden_images):
    """The deployment machinery (factory by import path, one runtime per replica, @serve.batch)
    with a stand-in app of the same factory signature as zse serve's."""
    requests = pytest.importorskip("requests")
    from fastapi.testclient import TestClient

    from tests.support.serve_standin import create_app

    bodies = _requests(golden_images)
    single = TestClient(create_app(Retriever.load(tiny_export, gallery=gallery)))
    expected = [single.post("/v1/search", json=b).json() for b in bodies]
    url = on_ray_serve(STANDIN_APP, tiny_export, gallery)
    with ThreadPoolExecutor(8) as pool:  # concurrent sketches: batched by Ray Serve
        answers = list(pool.map(lambda b: requests.post(f"{url}/v1/search", json=b, timeout=60), bodies * 2))
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert [a.json() for a in answers] == expected * 2
    replicas = {}
    with ThreadPoolExecutor(8) as pool:  # concurrent, so the router must use both replicas
        for _ in range(10):
            for r in pool.map(lambda _: requests.get(f"{url}/v1/replica", timeout=30), range(8)):
                info = r.json()
                replicas[info["pid"]] = info["batch_sizes"]
            if len(replicas) == 2:
                break
    assert len(replicas) == 2, "only one replica answered"
    sizes = [n for s in replicas.values() for n in s]
    assert sum(sizes) == len(bodies) * 2 and max(sizes) > 1, sizes


def _serve_app_missing() -> str | None:
    try:
        importlib.import_module("zse_infer.serve.app")
    except ImportError as exc:
        return f"the zse serve app (zse_infer.serve.app:create_app) is not importable here: {exc}"
    return None


@pytest.mark.skipif(_serve_app_missing() is not None, reason=str(_serve_app_missing()))
def test_zse_serve_app_on_two_replicas(on_ray_serve, tiny_export, gallery, golden_images):
    """zse serve's own app, behind Ray Serve: two replicas give the hits of the single-process server."""
    requests = pytest.importorskip("requests")
    from fastapi.testclient import TestClient

    from zse_infer.serve.app import create_app
    from zse_infer.serve.settings import ServeSettings

    settings = ServeSettings(max_batch=4, max_delay_ms=50)
    sketches = [p.read_bytes() for p in golden_images["sketch"][:4]]
    queries = [(s, rerank) for s in sketches for rerank in ("0", "10")]

    def hits(response):
        assert response.status_code == 200, response.text
        return response.json()["hits"]

    with TestClient(create_app(Retriever.load(tiny_export, gallery=gallery), settings)) as single:
        expected = [
            hits(single.post("/v1/search", params={"k": 5, "rerank": r}, files={"sketch": ("s.png", s, "image/png")}))
            for s, r in queries
        ]
    url = on_ray_serve(REAL_APP, tiny_export, gallery, settings=settings)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda q: requests.post(
                    f"{url}/v1/search",
                    params={"k": 5, "rerank": q[1]},
                    files={"sketch": ("s.png", q[0], "image/png")},
                    timeout=60,
                ),
                queries * 2,
            )
        )
    assert [hits(a) for a in answers] == expected * 2
