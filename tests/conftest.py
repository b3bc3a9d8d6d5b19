"""Test setup: find the real Fashion-MNIST without downloading it."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # The project's checkouts keep the read-only dataset in ../shared/data; CLDIFF_DATA set by the user wins.
    shared = REPO.parent / "shared" / "data"
    if not os.environ.get("CLDIFF_DATA") and (shared / "FashionMNIST" / "raw").is_dir():
        os.environ["CLDIFF_DATA"] = str(shared)
    # Notebooks are run by several pytest workers on few cores; one thread each is fastest.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
