"""cldiff packages as an sdist and a wheel that stand alone.

From a clean copy of the repository, `python -m build` makes the sdist and, from it, the wheel; both must carry every
shipped asset (cldiff/assets/**, the old-run fixture included) and pass `twine check`. The wheel is then installed
with --no-deps into a fresh virtual environment that sees this machine's packages (--system-site-packages: a new
torch would cost GBs and minutes) but not the checkout, and from a folder outside the repository it must:
import every cldiff module from the wheel (not the editable checkout), import in its own code nothing that neither the standard library
nor cldiff's declared requirements (with theirs) provide, and run `cldiff run --preset test --tasks 2`, `sample`, `evaluate`
and `report` through the console script the wheel installs.
"""
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import built_once, clean_env, copy_repo, shared_data

# Imports every cldiff module, then lists the top-level modules cldiff's own code imports (every import statement,
# lazy ones inside functions included) that neither the standard library nor the declared requirements (with theirs)
# provide; an import inside `try: ... except ImportError` is optional (an extra). What a requirement imports for
# itself is its own business.
UNDECLARED = r'''
import ast, importlib, importlib.metadata as md, json, pkgutil, re, sys
from pathlib import Path
import cldiff
mods = sorted(m.name for m in pkgutil.walk_packages(cldiff.__path__, "cldiff."))
for m in mods: importlib.import_module(m)
def guarded(t):   # a try whose handler catches ImportError: the import is optional (an extra), with a message
    names = {getattr(h.type, "id", None) for h in t.handlers} | {getattr(e, "id", None) for h in t.handlers
                                                                 if isinstance(h.type, ast.Tuple) for e in h.type.elts}
    return bool(names & {"ImportError", "ModuleNotFoundError"})
used, optional = set(), set()
for f in Path(cldiff.__file__).parent.glob("*.py"):
    tree = ast.parse(f.read_text())
    soft = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and guarded(t) for b in t.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        names = ({a.name.split(".")[0] for a in node.names} if isinstance(node, ast.Import) else
                 {node.module.split(".")[0]} if isinstance(node, ast.ImportFrom) and not node.level else set())
        (optional if id(node) in soft else used).update(names)
used -= optional   # imported under a guard somewhere: optional everywhere
def name(r): return re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0].lower().replace("_", "-")
def reqs(dist): return [name(r) for r in (md.requires(dist) or []) if "extra ==" not in r]
declared, todo = set(), reqs("cldiff")
while todo:
    d = todo.pop()
    if d in declared: continue
    declared.add(d)
    try: todo += reqs(d)
    except md.PackageNotFoundError: pass
owners = md.packages_distributions()
undeclared = sorted(m for m in used - {"cldiff", "__future__"} if m not in sys.stdlib_module_names
                    and not {name(d) for d in owners.get(m, [m])} & declared)
print(json.dumps({"file": cldiff.__file__, "modules": mods, "undeclared": undeclared}))
'''


def _run(cmd, cwd, env, timeout=600):
    start = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{time.monotonic() - start:5.1f} s  {' '.join(str(c) for c in cmd[:3])[:100]}")
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p.stdout


def _build(tmp: Path):
    repo = copy_repo(tmp / "repo")
    env = clean_env(tmp / "home")
    start = time.monotonic()
    # an isolated build fetches setuptools from PyPI; offline, build with the installed one
    p = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(repo)], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(repo)], tmp, env)
    (tmp / "seconds").write_text(str(time.monotonic() - start))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    "The sdist and the wheel built (once per session) from a clean copy: (repo copy, sdist, wheel, seconds)."
    tmp = built_once(tmp_path_factory, "wheel_build", _build)
    sdist, = (tmp / "dist").glob("cldiff-*.tar.gz")
    wheel, = (tmp / "dist").glob("cldiff-*.whl")
    return tmp / "repo", sdist, wheel, float((tmp / "seconds").read_text())


def test_sdist_and_wheel_carry_every_asset(dist):
    repo, sdist, wheel, seconds = dist
    print(f"python -m build (sdist, then the wheel from it): {seconds:.0f} s")
    assets = sorted(str(p.relative_to(repo)) for p in (repo / "cldiff" / "assets").rglob("*") if p.is_file())
    assert "cldiff/assets/fixtures/run_v0.1.0_gd/config.json" in assets, "the old-run fixture should ship in cldiff/assets/fixtures"
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as t:
        top = t.getnames()[0].split("/")[0]
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert not [a for a in assets if a not in in_wheel], f"the wheel lacks assets: {[a for a in assets if a not in in_wheel]}"
    assert not [a for a in assets if a not in in_sdist], f"the sdist {top} lacks assets: {[a for a in assets if a not in in_sdist]}"
    modules = sorted(str(p.relative_to(repo)) for p in (repo / "cldiff").glob("*.py"))
    assert set(modules) <= in_wheel, f"the wheel lacks modules: {sorted(set(modules) - in_wheel)}"
    assert {"settings.ini", "setup.py", "README.md", "LICENSE", "MANIFEST.in"} <= in_sdist, "the sdist cannot be built again"
    assert not [n for n in in_wheel if "__pycache__" in n or n.endswith(".pyc")], "the wheel carries compiled files"
    meta = next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))
    requires = [l for l in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if l.startswith("Requires-Dist:")]
    assert any(l.startswith("Requires-Dist: fastcore") and "extra" not in l for l in requires), \
        "fastcore (every notebook imports fastcore.test) should be a requirement of cldiff, not only of its dev extra"
    _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], repo.parent, clean_env(repo.parent / "home"))


def test_wheel_stands_alone(dist, tmp_path):
    "The wheel alone (in a venv without the checkout) imports every module and runs run, sample, evaluate and report."
    data = shared_data()
    if data is None: pytest.skip("Fashion-MNIST is not here (CLDIFF_DATA or ../shared/data)")
    _, _, wheel, _ = dist
    start = time.monotonic()
    venv = tmp_path / "venv"
    env = clean_env(tmp_path / "home", CLDIFF_DATA=data)
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], tmp_path, env)
    py, cli = venv / "bin" / "python", venv / "bin" / "cldiff"
    # pip comes from the system site; it installs into the venv that runs it
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)], tmp_path, env)
    outside = tmp_path / "elsewhere"   # not the repository, not beside it
    outside.mkdir()
    seen = json.loads(_run([py, "-c", UNDECLARED], outside, env).strip().splitlines()[-1])
    assert Path(seen["file"]).resolve().is_relative_to(venv.resolve()), f"cldiff was imported from {seen['file']}, not the wheel"
    assert {"cldiff.data", "cldiff.runner", "cldiff.cli", "cldiff.viz"} <= set(seen["modules"]), seen["modules"]
    assert not seen["undeclared"], f"cldiff imports modules that are not its declared requirements: {seen['undeclared']}"
    run = outside / "run"
    _run([cli, "run", "--preset", "test", "--tasks", "2", "--strategy", "gd", "--out", str(run), "--no-progress"], outside, env)
    assert [json.loads((run / f"task_{k}" / "state.json").read_text())["config"]["strategy"] for k in range(2)] == ["gd", "gd"]
    _run([cli, "sample", str(run), "--task", "1", "--steps", "2", "--n", "4", "--out", str(outside / "grid.png")], outside, env)
    assert (outside / "grid.png").stat().st_size > 0
    _run([cli, "evaluate", str(run), "--eval-samples", "64"], outside, env)
    assert all("generation" in t for t in json.loads((run / "metrics.json").read_text())["tasks"]), "evaluate added no metrics"
    _run([cli, "report", str(run), "--out", str(outside / "report")], outside, env)
    assert (outside / "report" / "report.md").is_file()
    print(f"the wheel in a fresh venv, from outside the repository: {time.monotonic() - start:.0f} s")
