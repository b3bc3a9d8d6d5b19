"""Test setup: find the real Fashion-MNIST without downloading it; helpers shared by the tests that work on a clean copy."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    "The folder holding FashionMNIST/raw/: $CLDIFF_DATA, else ../shared/data beside the checkout, else the user cache."
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cldiff" / "data"
    for d in (os.environ.get("CLDIFF_DATA"), REPO.parent / "shared" / "data", cache):
        if d and (Path(d) / "FashionMNIST" / "raw").is_dir(): return Path(d)
    return None


def pytest_configure(config):
    # The project's checkouts keep the read-only dataset in ../shared/data; CLDIFF_DATA set by the user wins.
    shared = REPO.parent / "shared" / "data"
    if not os.environ.get("CLDIFF_DATA") and (shared / "FashionMNIST" / "raw").is_dir():
        os.environ["CLDIFF_DATA"] = str(shared)
    # Notebooks are run by several pytest workers on few cores; one thread each is fastest.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def repo_files() -> list[str]:
    "The repository's files as a fresh clone (plus new files not yet committed, but nothing git ignores)."
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and os.path.lexists(REPO / f)]   # files deleted but not yet staged: gone
    raise RuntimeError(f"{REPO} is not a git checkout: the clean-copy tests need `git ls-files`")


def copy_repo(dst: Path) -> Path:
    "Copy the repository's files (as `repo_files` lists them; links stay links) into `dst`, which is returned."
    for f in repo_files():
        d = dst / f
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, d, follow_symlinks=False)
    return dst


def clean_env(home: Path, **extra) -> dict:
    "os.environ for a subprocess on a fresh machine: empty HOME and cache, no CLDIFF_DATA, one thread."
    env = {k: v for k, v in os.environ.items() if k not in ("CLDIFF_DATA", "PYTHONPATH", "JUPYTER_PLATFORM_DIRS")}
    (home / ".cache").mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONDONTWRITEBYTECODE="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def built_once(tmp_path_factory, name: str, build) -> Path:
    "A folder that `build(folder)` fills once per test session, even when pytest-xdist runs tests on several workers."
    from filelock import FileLock   # a requirement of torch
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base   # the workers' common folder
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True); folder.mkdir()
            build(folder)
            done.touch()
    return folder
