"""``zse serve`` as a command: options, a real subprocess answering HTTP, the missing-extra message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_options():
    from zse_infer.cli.main import main

    out = CliRunner().invoke(main, ["serve", "--help"]).output
    for option in (
        "--gallery",
        "--host",
        "--port",
        "--max-batch",
        "--max-delay-ms",
        "--max-queue",
        "--token",
        "--cors",
        "--allow-writes",
        "--timeout-s",
        "--max-upload-mb",
        "--max-rerank",
        "--max-connections",
        "--allowed-host",
    ):
        assert option in out, option
    assert "127.0.0.1" in out


def test_serve_subprocess_answers_and_stops(tiny_export, serve_gallery, sketches):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "zse_infer.cli.main",
        "serve",
        str(tiny_export),
        "--gallery",
        str(serve_gallery),
        "--port",
        str(port),
        "--token",
        "t0ken",
        "--max-batch",
        "4",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.post(
            base + "/v1/search?k=2",
            files={"sketch": sketches[0].read_bytes()},
            headers={"Authorization": "Bearer t0ken"},
            timeout=30,
        )
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
        assert httpx.get(base + "/readyz").json()["detail"]["max_batch"] == 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "serving 9 photos" in proc.stderr.read()


def test_missing_fastapi_names_the_extra():
    code = "import sys; sys.modules['fastapi'] = None\nfrom zse_infer.serve import create_app\ncreate_app(None)"
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    assert "zse-infer[serve]" in r.stderr and "DependencyError" in r.stderr


def test_ray_flags_hand_the_server_settings_to_ray_serve(tiny_export, tmp_path, monkeypatch):
    """``zse serve --ray``: the driver opens no model and passes the same settings to every replica."""
    import zse_infer.distributed.ray_serve as ray_serve
    from zse_infer.cli.main import main

    seen = {}
    monkeypatch.setattr(ray_serve, "serve_on_ray", lambda *a, **kw: seen.update(args=a, **kw))
    gallery = tmp_path / "g"
    r = CliRunner().invoke(
        main,
        [
            "serve",
            str(tiny_export),
            "--gallery",
            str(gallery),
            "--ray",
            "--replicas",
            "3",
            "--port",
            "8123",
            "--token",
            "t",
            "--allow-writes",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen["replicas"] == 3 and seen["port"] == 8123 and seen["address"] is None
    settings = seen["app_kwargs"]["settings"]
    assert settings.token == "t" and settings.allow_writes and settings.max_batch == 16 and settings.max_delay_ms == 5
    assert seen["spec"].export_dir == str(tiny_export.absolute()) and seen["spec"].threads == 1
    assert "3 replica(s)" in r.output


def test_ray_only_options_need_ray(tiny_export, tmp_path):
    from zse_infer.cli.main import main

    r = CliRunner().invoke(main, ["serve", str(tiny_export), "--gallery", str(tmp_path / "g"), "--ray-address", "auto"])
    assert r.exit_code != 0 and "need --ray" in r.output


def _start(tiny_export, tmp_path, monkeypatch, *args):
    """``zse serve`` up to the point where it would listen: (result, settings, host) handed to run()."""
    import zse_infer.serve as serve_pkg
    from zse_infer.cli.main import main

    seen = {}
    monkeypatch.setattr(
        serve_pkg, "run", lambda retriever, settings, host, port, log_level: seen.update(settings=settings, host=host)
    )
    r = CliRunner().invoke(main, ["serve", str(tiny_export), "--gallery", str(tmp_path / "g"), *args])
    assert r.exit_code == 0, r.output
    return r, seen.get("settings"), seen.get("host")


def test_allow_writes_without_a_token_warns_at_start(tiny_export, tmp_path, monkeypatch):
    """Issue 18, item 8: nothing said that any local program (and, but for the Origin checks, any
    web page) could change the gallery."""
    r, settings, _ = _start(tiny_export, tmp_path, monkeypatch, "--allow-writes")
    assert "warning: --allow-writes without --token" in r.output and settings.allow_writes and settings.token is None
    quiet, _, _ = _start(tiny_export, tmp_path, monkeypatch, "--allow-writes", "--token", "t")
    assert "warning" not in quiet.output
    exposed, _, _ = _start(tiny_export, tmp_path, monkeypatch, "--host", "0.0.0.0")
    assert "listening on 0.0.0.0 without --token" in exposed.output and "reverse proxy" in exposed.output


def test_limits_reach_the_server(tiny_export, tmp_path, monkeypatch):
    _, settings, _host = _start(
        tiny_export,
        tmp_path,
        monkeypatch,
        "--max-rerank",
        "200",
        "--max-connections",
        "64",
        "--allowed-host",
        "search.example",
    )
    assert (settings.max_rerank, settings.max_connections, settings.allowed_hosts) == (200, 64, ("search.example",))
    _, defaults, _ = _start(tiny_export, tmp_path, monkeypatch)
    assert (
        defaults.max_rerank == 1000 and defaults.allowed_hosts is None
    )  # run() names the loopback hosts (server.effective_settings)
    from zse_infer.serve.server import effective_settings
    from zse_infer.serve.settings import LOOPBACK_HOSTS

    assert effective_settings(defaults, "127.0.0.1").allowed_hosts == LOOPBACK_HOSTS
    assert effective_settings(defaults, "0.0.0.0").allowed_hosts is None
