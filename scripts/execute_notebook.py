"""Execute notebooks in place for the docs site: `#| slow` cells keep their saved outputs and are not run, and no widget
state is saved (a static page needs none, and Quarto would fetch the widget manager from a CDN for it).

    OMP_NUM_THREADS=1 python scripts/execute_notebook.py nbs/07_distillation.ipynb [...]
    nbdev_clean --fname nbs/07_distillation.ipynb

Run `#| slow` cells on purpose with `jupyter nbconvert --execute` when their saved outputs should change.
"""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def is_slow(cell) -> bool:
    return cell.cell_type == "code" and any(l.replace(" ", "") == "#|slow" for l in cell.source.splitlines())


def execute(path: Path) -> list[int]:
    nb = nbformat.read(path, as_version=4)
    slow = {i: (c.source, c.outputs, c.get("execution_count")) for i, c in enumerate(nb.cells) if is_slow(c)}
    for i in slow: nb.cells[i].source = ""
    NotebookClient(nb, timeout=1800, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for i, (source, outputs, count) in slow.items():
        nb.cells[i].source, nb.cells[i].outputs, nb.cells[i].execution_count = source, outputs, count
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return sorted(slow)


if __name__ == "__main__":
    for p in sys.argv[1:]: print(p, "slow cells kept as saved:", execute(Path(p)))
