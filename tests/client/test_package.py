"""The two distributions as users install them: the client's wheel (``clients/python``) in a fresh virtual
environment without torch, calling the live service; the service's wheel (``pip install .``) holding
every file of its packages, importable and migrating a database from where it was installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from tests.client.live import LiveService

ROOT = Path(__file__).resolve().parents[2]
# What the service's wheel packages (pyproject.toml), and where the client lives.
SERVICE_TREES = ("app", "workers", "migrations")
CLIENT = Path("clients/python")
# The service's stack: none of it may come with the client.
SERVICE_ONLY = {"torch", "transformers", "fastapi", "sqlalchemy", "redis", "rq", "judge-service"}

pytestmark = pytest.mark.timeout(300)


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _checkout_copy(destination: Path) -> None:
    """A copy of the checkout's files that the builds read, as git sees them (tracked, and new ones not
    ignored): no build folders are left in the checkout, no caches go in."""
    listed = _run(
        "git",
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        "pyproject.toml",
        *SERVICE_TREES,
        CLIENT,
        cwd=ROOT,
    )
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a file deleted in the working tree stays listed until committed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)


def _no_isolation() -> list[str]:
    """Build with this environment's setuptools when it is recent enough (no download)."""
    try:
        major = int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if major >= 68 else []


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from a copy of the checkout as `pip wheel` builds them for users."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheels")
    _checkout_copy(src)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *_no_isolation(), "-w", out]
    _run(*pip_wheel, src, src / CLIENT)
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert set(built) == {"judge_service", "judge_client"}, built
    return {"service": built["judge_service"], "client": built["judge_client"], "src": src}


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    return sorted(
        line.split(":", 1)[1].strip().split(">")[0] for line in lines if line.startswith("Requires-Dist:")
    )


def test_the_client_wheel_installs_without_torch_and_calls_the_service(
    wheels: dict[str, Path], service: LiveService, tmp_path: Path
) -> None:
    assert _requires(wheels["client"]) == ["httpx", "pydantic"]
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheels["client"])
    installed = json.loads(_run(sys.executable, "-m", "pip", "--python", python, "list", "--format=json"))
    names = {d["name"].lower().replace("_", "-") for d in installed}
    assert "judge-client" in names and not names & SERVICE_ONLY, names

    script = """
import importlib.util, json, sys
import judge_client
from judge_client import Judge, PairwiseItem
assert all(importlib.util.find_spec(m) is None for m in ("torch", "app", "fastapi")), "service modules"
with Judge() as judge:  # JUDGE_URL and JUDGE_API_KEY
    item = PairwiseItem(id="p0", question="What is 2+2?", answer_a="It is four.", answer_b="5")
    job = judge.submit_batch([item])
    ended = judge.wait(job, timeout=60)
    results = [(r.id, r.verdict, r.consistent) for r in judge.results(ended)]
    print(json.dumps({"file": judge_client.__file__, "prefix": sys.prefix, "status": ended.status,
                      "results": results, "read_back": judge.job(job.id).status}))
"""
    env = {"PATH": os.environ.get("PATH", ""), "JUDGE_URL": service.url, "JUDGE_API_KEY": service.key}
    out = json.loads(_run(python, "-c", script, cwd=tmp_path, env=env))
    assert out["file"].startswith(str(venv)) and Path(out["prefix"]) == venv
    assert (out["status"], out["read_back"]) == ("succeeded", "succeeded")
    assert out["results"] == [["p0", "A", True]]


def test_the_service_wheel_holds_every_file_and_runs_from_where_it_is_installed(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    src = wheels["src"]
    with zipfile.ZipFile(wheels["service"]) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "judge = app.cli:main" in archive.read(entry_points).decode()
    shipped = {
        path.relative_to(src).as_posix()
        for tree in SERVICE_TREES
        for path in (src / tree).rglob("*")
        if path.is_file()
    }
    client = {
        f"judge_client/{p.relative_to(src / CLIENT / 'judge_client').as_posix()}"
        for p in (src / CLIENT / "judge_client").rglob("*")
        if p.is_file()
    }
    missing = sorted((shipped | client) - names)
    assert not missing, f"files of the packages that `pip install .` would not install: {missing}"

    # `pip install .` installs this wheel; its dependencies are this environment's.
    target = tmp_path / "site"
    _run(
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheels["service"]
    )
    database = tmp_path / "judge.db"
    script = f"""
import sys
import app, judge_client, migrations
from app.cli import main
from app.core.migrate import upgrade
from app.main import create_app
for module in (app, judge_client, migrations):
    assert module.__file__.startswith({str(target)!r}), module.__file__
upgrade("sqlite:///{database}")
"""
    _run(sys.executable, "-c", script, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert database.stat().st_size > 0
