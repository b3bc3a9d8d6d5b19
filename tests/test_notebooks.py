"""Run every notebook in nbs/ as a test (what `nbdev_test` does), one pytest test per notebook.

Cells flagged with `tst_flags` from settings.ini (`#| slow`) are skipped unless CLDIFF_TEST_FLAGS names
them, e.g. `CLDIFF_TEST_FLAGS=slow pytest tests`.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


def _skip_flags():
    flags = set(str(get_config(path=REPO).get("tst_flags", "")).split())
    return sorted(flags - set(os.environ.get("CLDIFF_TEST_FLAGS", "").split()))


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 5, f"expected the library notebooks in {NBS}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(notebook):
    ok, seconds = run_notebook(notebook, skip_flags=_skip_flags(), basepath=REPO)
    assert ok, f"{notebook.name} failed after {seconds:.0f} s (the traceback is printed above)"
