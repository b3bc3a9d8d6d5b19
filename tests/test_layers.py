"""The package's import graph goes one way: each module imports only modules of lower layers (so there is no cycle).

The layers, lowest first: utilities, data, the dataset registry (Fashion-MNIST and CIFAR-10 by name, built on data),
the noise schedule, the UNet, training and sampling, the run store, the strategy registry and the strategies, the
metrics and the replay-trained classifier, the strategy that needs that classifier (class-balanced replay), the
evaluation layer (settings, task context, evaluator interface and the evaluators a config asks for), the runner,
then the report, the widgets and the command line on top. This is the notebooks' reading order except that metrics,
classifier, evaluation and class-balanced replay (lessons 10-11b) sit below the runner (lesson 08), which only asks
them for results or registers their strategy, and class-balanced replay (11b) below evaluation (11a), which it does
not use. Lazy imports inside functions count too.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cldiff"
LAYERS = ["utils", "data", "datasets", "schedules", "unet", "train", "sample", "store", "registry", "replay", "distillation",
          "metrics", "solver", "balanced", "evaluation", "runner", "report", "viz", "cli"]


def cldiff_imports(path: Path) -> set[str]:
    "The cldiff modules a source file imports, at top level or inside functions."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:                       # from .x import y  /  from . import x
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.split(".")[0] == "cldiff":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cldiff.")}
    return found & set(LAYERS)


def test_every_module_has_a_layer():
    modules = {p.stem for p in PKG.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(LAYERS), f"modules without a layer: {modules - set(LAYERS)}; layers without a module: {set(LAYERS) - modules}"


@pytest.mark.parametrize("module", LAYERS)
def test_imports_only_lower_layers(module):
    upward = sorted(m for m in cldiff_imports(PKG / f"{module}.py") if LAYERS.index(m) >= LAYERS.index(module))
    assert not upward, f"cldiff.{module} imports {upward}, which are not below it in {LAYERS}"


def test_the_checker_sees_upward_imports(tmp_path):
    # the check must be able to fail: a lazy upward import inside a function is found
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from cldiff.runner import run\n    from .cli import main\n")
    assert cldiff_imports(f) == {"runner", "cli"}


def test_pyflakes_clean():
    pytest.importorskip("pyflakes")
    out = subprocess.run([sys.executable, "-m", "pyflakes", str(PKG)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
