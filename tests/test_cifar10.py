"""CIFAR-10's real loading code (torchvision's `CIFAR10`, with its md5 checks and its download) on a generated archive.

CIFAR-10 is not on the test machines and nothing may be downloaded, so `write_cifar10_standin` writes made-up images in
the real on-disk format and a loopback HTTP server stands in for the download site. torchvision reads only files whose
md5 is in its own table (`CIFAR10.train_list`/`test_list` and `meta` carry the md5 of each file, `tgz_md5` the
archive's, `url` where it is fetched from): THESE TESTS ONLY, through pytest's monkeypatch, put the stand-in's sums and
the loopback URL there; the library never changes them, so real use keeps torchvision's integrity check.
"""
import functools
import http.server
import threading

import pytest
import torch

from cldiff.data import DataCorruptError, DataNotFoundError, class_order
from cldiff.datasets import (CIFAR10_ARCHIVE, CIFAR10_FOLDER, DATASETS, dataset_info, dataset_tasks, load_dataset,
                             random_hflip, write_cifar10_standin)
from cldiff.utils import ConfigError

CIFAR10 = pytest.importorskip("torchvision.datasets").CIFAR10


def trust_standin(monkeypatch, sums: dict, url: str | None = None):
    "Test only: torchvision's md5 table (and download URL) for the stand-in; monkeypatch restores the real ones."
    monkeypatch.setattr(CIFAR10, "train_list", [[f, sums[f]] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, sums[f]] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": sums["batches.meta"]})
    if CIFAR10_ARCHIVE in sums: monkeypatch.setattr(CIFAR10, "tgz_md5", sums[CIFAR10_ARCHIVE])
    if url is not None: monkeypatch.setattr(CIFAR10, "url", url)


@pytest.fixture
def standin(tmp_path, monkeypatch):
    "A data root holding the extracted stand-in, trusted by torchvision for this test."
    sums = write_cifar10_standin(tmp_path / "data", train_per_class=4, test_per_class=2)
    trust_standin(monkeypatch, sums)
    return tmp_path / "data"


@pytest.fixture
def server(tmp_path):
    "A loopback HTTP server over tmp_path/site (what `python -m http.server --bind 127.0.0.1` does), in a thread."
    site = tmp_path / "site"; site.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True); thread.start()
    try: yield site, f"http://127.0.0.1:{httpd.server_address[1]}/{CIFAR10_ARCHIVE}"
    finally: httpd.shutdown(); httpd.server_close(); thread.join(5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # urllib would send even a loopback request through a configured proxy
    for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_real_loader_reads_the_standin(standin):
    x, y = load_dataset("cifar10", standin, train=True, download=False)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert -1 <= x.min() and x.max() <= 1 and x.min() < -0.5 and x.max() == 1.0   # white squares reach 1
    assert torch.bincount(y).tolist() == [4] * 10
    xt, yt = load_dataset("cifar10", standin, train=False, download=False)
    assert xt.shape == (20, 3, 32, 32) and torch.bincount(yt).tolist() == [2] * 10
    assert load_dataset("cifar10", standin, train=False, image_size=16, download=False)[0].shape == (20, 3, 16, 16)


@pytest.mark.parametrize("seed", [42, 69, 1714])
def test_stream_follows_the_seeded_class_order(standin, seed):
    stream = dataset_tasks("cifar10", standin, seed=seed, download=False)
    assert stream.class_order == class_order(seed) and len(stream) == 5
    assert [c for t in stream for c in t.classes] == class_order(seed)
    for t in stream:
        assert len(t.classes) == 2 and set(t.train_labels.tolist()) == set(t.classes) == set(t.test_labels.tolist())
        assert t.train_images.shape[1:] == (3, 32, 32) and -1 <= t.train_images.min() and t.train_images.max() <= 1


def test_unknown_dataset_is_one_line():
    with pytest.raises(ConfigError, match="choose one of cifar10, fashion_mnist") as e: dataset_tasks("nonsense")
    assert "\n" not in str(e.value)
    assert sorted(DATASETS) == ["cifar10", "fashion_mnist"]


def test_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError) as e: load_dataset("cifar10", tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / CIFAR10_FOLDER) in msg and "--download" in msg and "CLDIFF_DATA" in msg and "\n" not in msg
    assert not (tmp_path / CIFAR10_FOLDER).exists()


def test_a_fashion_mnist_folder_is_not_cifar10(tmp_path):
    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match=CIFAR10_FOLDER): load_dataset("cifar10", tmp_path, download=False)


def test_real_checksums_refuse_the_standin(tmp_path):
    # no monkeypatch here: torchvision's real md5 table, as in real use
    write_cifar10_standin(tmp_path, train_per_class=1, test_per_class=1)
    with pytest.raises(DataCorruptError, match="md5") as e: load_dataset("cifar10", tmp_path, download=False)
    assert "\n" not in str(e.value)


def test_a_damaged_file_is_reported_as_damaged(standin):
    f = standin / CIFAR10_FOLDER / "data_batch_3"
    data = bytearray(f.read_bytes()); data[len(data) // 2] ^= 0xFF; f.write_bytes(bytes(data))
    with pytest.raises(DataCorruptError, match="do not match their md5"): load_dataset("cifar10", standin, download=False)


def test_download_through_loopback_server(tmp_path, monkeypatch, server):
    site, url = server
    sums = write_cifar10_standin(site, train_per_class=3, test_per_class=1, archive=True)
    assert sorted(p.name for p in site.iterdir()) == [CIFAR10_ARCHIVE]   # only the archive is served
    trust_standin(monkeypatch, sums, url)
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError): load_dataset("cifar10", root, download=False)   # nothing fetched unasked
    x, y = load_dataset("cifar10", root, train=True, download=True)
    assert x.shape == (30, 3, 32, 32) and torch.bincount(y).tolist() == [3] * 10
    assert (root / CIFAR10_ARCHIVE).is_file() and all((root / CIFAR10_FOLDER / f).is_file() for f in sums if f != CIFAR10_ARCHIVE)
    # a second call with download allowed finds the checked files and fetches nothing
    (site / CIFAR10_ARCHIVE).unlink()
    assert torch.equal(load_dataset("cifar10", root, train=True, download=True)[0], x)


def test_download_with_a_wrong_md5_is_damaged_and_leaves_nothing(tmp_path, monkeypatch, server):
    site, url = server
    sums = write_cifar10_standin(site, train_per_class=1, test_per_class=1, archive=True)
    sums.pop(CIFAR10_ARCHIVE)            # the archive is checked against CIFAR-10's real md5, which it fails
    trust_standin(monkeypatch, sums, url)
    root = tmp_path / "data"
    with pytest.raises(DataCorruptError, match="damaged") as e: load_dataset("cifar10", root, download=True)
    assert "\n" not in str(e.value)
    assert not (root / CIFAR10_FOLDER).exists() and not (root / CIFAR10_ARCHIVE).exists()


def test_unreachable_download_is_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/" + CIFAR10_ARCHIVE)   # port 9 (discard): refused
    with pytest.raises(DataNotFoundError, match="could not be downloaded"): load_dataset("cifar10", tmp_path, download=True)
    assert not (tmp_path / CIFAR10_FOLDER).exists()


def test_flip_only_training_batches_and_deterministic(standin):
    info = dataset_info("cifar10")
    assert info.hflip and not dataset_info("fashion_mnist").hflip
    stream = dataset_tasks("cifar10", standin, download=False)
    x = stream[0].train_images
    a = info.augment_train_batch(x, torch.Generator().manual_seed(3))
    b = info.augment_train_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    flipped = [not torch.equal(a[i], x[i]) for i in range(len(x))]
    assert 0 < sum(flipped) < len(x)
    assert all(torch.equal(a[i], x[i].flip(-1) if f else x[i]) for i, f in enumerate(flipped))
    # the stored images, training and test, are never flipped: loading twice gives the same tensors
    again = dataset_tasks("cifar10", standin, download=False)
    assert torch.equal(again[0].train_images, x) and torch.equal(again[0].test_images, stream[0].test_images)
    # Fashion-MNIST: the batch itself, and no draw from the generator
    g = torch.Generator().manual_seed(0); state = g.get_state()
    assert dataset_info("fashion_mnist").augment_train_batch(x, g) is x and torch.equal(g.get_state(), state)
    # p=0 and p=1 are the identity and the mirror
    assert torch.equal(random_hflip(x, torch.Generator(), p=0.0), x) and torch.equal(random_hflip(x, torch.Generator(), p=1.0), x.flip(-1))


def test_paper_settings():
    cf, fm = dataset_info("cifar10"), dataset_info("fashion_mnist")
    assert cf.iters_per_task() == 31_250 and fm.iters_per_task() == 9_375
    p = cf.paper_preset()
    assert (p["unet"], p["batch_size"], p["image_size"], p["evaluation"]["sample_steps"]) == ("cifar10", 64, 32, 20)
    assert p["strategy_options"]["gd"] == {"replay_lambda": 0.75} and fm.defaults.replay_lambda["gd"] == 3.0
    from cldiff.unet import UNET_PRESETS
    assert UNET_PRESETS[p["unet"]]["in_channels"] == cf.channels and UNET_PRESETS[fm.defaults.unet]["in_channels"] == fm.channels


def _png_mode(path) -> str:
    from PIL import Image
    with Image.open(path) as im: return im.mode


def test_a_cifar10_test_run_goes_through_everything(tmp_path, monkeypatch, capsys):
    """`cldiff run --dataset cifar10 --preset test` with every strategy on the stand-in, then the solver, FID/KID/KLD,
    `sample`, `evaluate`, `report` and the player on the runs: 3-channel images all the way, and bad input refused."""
    import json
    from cldiff.cli import main
    from cldiff.runner import STRATEGIES          # importing the runner registers every built-in strategy
    from cldiff.store import finished_tasks
    from cldiff.viz import run_trajectories, trajectory_player, save_trajectories, load_trajectories
    root = tmp_path / "data"
    trust_standin(monkeypatch, write_cifar10_standin(root, train_per_class=5, test_per_class=2))
    runs = tmp_path / "runs"
    common = ["--dataset", "cifar10", "--preset", "test", "--data-root", str(root), "--no-progress"]
    assert {"gd", "gr", "finetune", "joint", "nigd", "sggd"} <= set(STRATEGIES)
    for s in sorted(STRATEGIES):
        evaluation = ["--eval-samples", "8", "--solver-epochs", "1"] if s in ("gd", "finetune") else []
        assert main(["run", "--strategy", s, "--out", str(runs / s), *common, *evaluation]) == 0, capsys.readouterr().err
        config = json.loads((runs / s / "config.json").read_text())
        assert config["dataset"] == "cifar10" and finished_tasks(runs / s) == 5
        assert torch.load(runs / s / "task_4" / "samples.pt").shape[1] == 3
    gd = json.loads((runs / "gd" / "metrics.json").read_text())["tasks"][-1]
    assert torch.isfinite(torch.tensor([gd["generation"]["fid"], gd["generation"]["kid"], gd["generation"]["kld"]])).all()
    assert gd["generation"]["classifier"]["dataset"] == "cifar10" and 0 < gd["generation"]["classifier"]["test_accuracy"] <= 1
    assert gd["solver"]["mode"] == "replay" and len(gd["solver"]["task_accuracies"]) == 5
    assert list((root / "cldiff").glob("cifar10_classifier_v*.pt")), "the CIFAR-10 classifier is cached beside the data"

    grid = tmp_path / "grid.png"
    assert main(["sample", str(runs / "gd"), "--n", "4", "--steps", "2", "--out", str(grid)]) == 0
    assert _png_mode(grid) == "RGB"
    assert main(["evaluate", str(runs / "gr"), "--eval-samples", "8", "--data-root", str(root)]) == 0
    assert "generation" in json.loads((runs / "gr" / "metrics.json").read_text())["tasks"][-1]
    assert main(["report", str(runs / "gd"), str(runs / "gr"), "--out", str(tmp_path / "report")]) == 0
    assert "| gd |" in (tmp_path / "report" / "report.md").read_text()

    trajectories = run_trajectories([runs / "gd", runs / "gr"], n=2, steps=2)
    assert trajectories["gd"][4].x_t.shape[2] == 3
    again = load_trajectories(save_trajectories(trajectories, tmp_path / "traj.pt"))
    assert again["gd"][4].x_t.shape == trajectories["gd"][4].x_t.shape
    assert "data:image/png;base64," in trajectory_player(trajectories).html
    capsys.readouterr()

    # bad input: one line, nothing written
    before = (runs / "gd" / "metrics.json").read_text()
    assert main(["run", "--out", str(runs / "gd"), "--dataset", "fashion_mnist"]) == 2
    assert main(["evaluate", str(runs / "gd"), "--dataset", "fashion_mnist", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "dataset: 'cifar10' in the folder vs 'fashion_mnist' now" in err[0], err
    assert "holds a cifar10 run, not fashion_mnist" in err[1]
    assert (runs / "gd" / "metrics.json").read_text() == before
    assert main(["run", "--out", str(tmp_path / "new"), "--dataset", "cifar10", "--preset", "micro"]) == 2
    assert "unknown run preset 'micro' for CIFAR-10; choose one of colab, paper, test, tiny" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit):
        main(["run", "--out", str(tmp_path / "new"), "--dataset", "nonsense"])
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_a_fashion_mnist_folder_is_refused_as_cifar10(tmp_path, capsys):
    "CIFAR-10 settings on a Fashion-MNIST run folder (here the shipped cldiff 0.1 fixture): one line, nothing changed."
    import shutil
    from cldiff.cli import main
    from cldiff.utils import ASSETS
    run = tmp_path / "old"
    shutil.copytree(ASSETS / "fixtures" / "run_v0.1.0_gd", run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["run", "--out", str(run), "--dataset", "cifar10", "--preset", "test"]) == 2
    err = capsys.readouterr().err
    assert "dataset: 'fashion_mnist' in the folder vs 'cifar10' now" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_paper_preset_writes_the_authors_settings(tmp_path):
    from cldiff.runner import run_config
    from cldiff.unet import count_parameters, make_unet
    cfg = run_config("paper", "gd", dataset="cifar10")
    d = cfg.to_dict()
    assert (d["dataset"], d["unet"], d["batch_size"], d["image_size"]) == ("cifar10", "cifar10", 64, 32)
    assert d["strategy_options"]["replay_lambda"] == 0.75 and d["evaluation"]["sample_steps"] == 20
    assert d["iters_per_task"] == 200 * 10_000 // 64 and d["evaluation"]["eval_samples"] == 10_000
    assert {s: run_config("paper", s, dataset="cifar10").strategy_options["replay_lambda"] for s in ("gr", "lwf", "gaussian")} == \
        {"gr": 1.0, "lwf": 1.25, "gaussian": 8.0}
    assert round(count_parameters(make_unet(cfg.unet, in_channels=3, out_channels=3)) / 1e6, 1) == 35.7


def test_cli_paper_preset_writes_the_authors_settings_to_config_json(tmp_path, monkeypatch, capsys):
    "`cldiff run --preset paper --dataset cifar10` writes the authors' settings into config.json before it trains (stopped at the first task here)."
    import json
    import cldiff.metrics
    import cldiff.runner
    from cldiff.cli import main
    root = tmp_path / "data"
    trust_standin(monkeypatch, write_cifar10_standin(root, train_per_class=32, test_per_class=2))   # a task holds a batch of 64
    def stop(*args, **kwargs): raise KeyboardInterrupt     # what Ctrl-C does once training starts
    monkeypatch.setattr(cldiff.runner, "train_task", stop)
    # the paper preset asks for the Inception FID, whose network is not what this test is about
    monkeypatch.setattr(cldiff.metrics, "inception_extractor", lambda **kw: None)
    assert main(["run", "--dataset", "cifar10", "--preset", "paper", "--strategy", "gd",
                 "--data-root", str(root), "--out", str(tmp_path / "paper"), "--no-progress"]) == 130
    c = json.loads((tmp_path / "paper" / "config.json").read_text())
    assert (c["dataset"], c["preset"], c["unet"], c["batch_size"], c["iters_per_task"]) == ("cifar10", "paper", "cifar10", 64, 31_250)
    assert c["strategy_options"]["replay_lambda"] == 0.75
    assert (c["evaluation"]["sample_steps"], c["evaluation"]["eval_samples"], c["evaluation"]["inception_fid"]) == (20, 10_000, True)
