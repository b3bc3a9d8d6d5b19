"""Damaged and unusual run folders, as a user makes them: refused with one line, finished tasks never lost.

One real 2-task `--preset test` run on Fashion-MNIST is made once (in a folder that already holds a user's
own hidden files); every test works on a copy, through `cldiff.cli.main` in this process (no start-up cost).
"""
import json
import shutil
from pathlib import Path

import pytest

from cldiff.cli import main
from cldiff.store import SCHEDULER_FILE, finished_tasks, task_dir, weights_sha256

T = ["--preset", "test", "--no-progress"]


def cldiff(capsys, *args):
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(capsys, *args) -> str:
    rc, out, err = cldiff(capsys, *args)
    assert rc == 2, out + err
    lines = [l for l in err.splitlines() if l.startswith("cldiff ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def made_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("made") / "r"
    d.mkdir()
    # a user's own hidden files, in a folder that is not a run yet: a run started there must not delete them
    (d / ".notes.tmp-1").write_text("mine")
    (d / ".cache.tmp-keep").mkdir()
    (d / ".draft.tmp-0badcafe").write_text("mine too, though it looks like cldiff's")
    assert main(["run", *T, "--tasks", "2", "--out", str(d)]) == 0
    return d


@pytest.fixture
def r(made_run, tmp_path):
    dst = tmp_path / "r"
    shutil.copytree(made_run, dst)
    return dst


def test_user_hidden_files_survive_the_first_run(made_run):
    assert finished_tasks(made_run) == 2
    assert (made_run / ".notes.tmp-1").read_text() == "mine"
    assert (made_run / ".cache.tmp-keep").is_dir() and (made_run / ".draft.tmp-0badcafe").is_file()


def test_gap_is_refused_and_later_tasks_kept(r, capsys):
    before = weights_sha256(task_dir(r, 1) / "model")
    (task_dir(r, 0) / "state.json").unlink()
    line = one_line_error(capsys, "run", *T, "--tasks", "2", "--precision", "fp32", "--out", r)
    assert "task_0 has no state.json while task 1 is there" in line and "delete task_0 .. task_1" in line, line
    shutil.rmtree(task_dir(r, 0))
    line = one_line_error(capsys, "run", *T, "--tasks", "2", "--out", r)
    assert "task_0 is missing" in line, line
    assert weights_sha256(task_dir(r, 1) / "model") == before     # the later finished task was not retrained


def test_temporaries_inside_task_folders_are_cleaned(r, capsys):
    (task_dir(r, 1) / ".state.json.tmp-0123abcd").write_text("{half")
    (r / ".task_2.tmp-89abcdef").mkdir()
    rc, out, err = cldiff(capsys, "run", *T, "--tasks", "2", "--out", r)
    assert rc == 0, err
    assert not (task_dir(r, 1) / ".state.json.tmp-0123abcd").exists() and not (r / ".task_2.tmp-89abcdef").exists()
    assert (r / ".notes.tmp-1").exists()                           # not cldiff's name: kept


def test_empty_state_is_one_line_everywhere(r, capsys, tmp_path):
    (task_dir(r, 1) / "state.json").write_text("{}")
    for args in (["run", *T, "--tasks", "2", "--out", r], ["evaluate", r, "--eval-samples", "8"],
                 ["report", r, "--out", tmp_path / "rep"], ["sample", r, "--n", "2", "--steps", "2", "--out", tmp_path / "g.png"]):
        assert "is not a task state written by cldiff" in one_line_error(capsys, *args)


def test_edited_schedule_is_caught_before_evaluate_overwrites(r, capsys):
    cfg = task_dir(r, 1) / "model" / SCHEDULER_FILE
    cfg.write_text(cfg.read_text().replace('"num_train_timesteps": 1000', '"num_train_timesteps": 500'))
    state_before = (task_dir(r, 1) / "state.json").read_text()
    line = one_line_error(capsys, "evaluate", r, "--eval-samples", "8")
    assert "task 1's checkpoint is damaged" in line and "noise schedule" in line, line
    assert (task_dir(r, 1) / "state.json").read_text() == state_before


def test_scheduler_config_missing_beta_start(r, capsys, tmp_path):
    cfg = task_dir(r, 1) / "model" / SCHEDULER_FILE
    cfg.write_text(json.dumps({k: v for k, v in json.loads(cfg.read_text()).items() if k != "beta_start"}))
    # in a run: the recorded hash catches it (run, sample; evaluate loads checkpoints the same way, see above)
    for args in (["run", *T, "--tasks", "2", "--out", r], ["sample", r, "--n", "2", "--steps", "2", "--out", tmp_path / "g.png"]):
        assert "noise schedule" in one_line_error(capsys, *args)
    # a model folder on its own (no hash to compare): the missing key is named
    line = one_line_error(capsys, "sample", task_dir(r, 1) / "model", "--n", "2", "--steps", "2", "--out", tmp_path / "g.png")
    assert "lacks beta_start" in line, line


def test_foreign_model_predicting_v_is_refused(r, capsys, tmp_path):
    model = task_dir(r, 1) / "model"
    cfg = model / SCHEDULER_FILE
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "prediction_type": "v_prediction"}))
    line = one_line_error(capsys, "sample", model, "--n", "2", "--steps", "2", "--out", tmp_path / "g.png")
    assert "predicts 'v_prediction'" in line and "epsilon" in line, line


def test_state_without_hash_is_refused(r, capsys, tmp_path):
    state = json.loads((task_dir(r, 1) / "state.json").read_text())
    del state["weights_sha256"]
    (task_dir(r, 1) / "state.json").write_text(json.dumps(state))
    line = one_line_error(capsys, "sample", r, "--n", "2", "--steps", "2", "--out", tmp_path / "g.png")
    assert "records no hash of its weights" in line, line


def test_report_counts_a_run_once(r, capsys, tmp_path):
    rc, out, err = cldiff(capsys, "report", r, r, Path(str(r) + "/"), "--out", tmp_path / "rep")
    assert rc == 0, err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| gd | 1 | 2 |" in text and "counted once" in text, text


def test_evaluate_records_its_settings_and_report_shows_a_mix(r, capsys, tmp_path):
    rc, out, err = cldiff(capsys, "evaluate", r, "--eval-samples", "8")
    assert rc == 0, err
    states = [json.loads((task_dir(r, k) / "state.json").read_text())["entry"] for k in range(2)]
    assert [s["evaluation"]["eval_samples"] for s in states] == [8, 8]
    # an evaluate interrupted after task 0 (as the probe left it): task 0 at 4 samples, task 1 at 8
    from cldiff.metrics import GenerationEvaluator
    from cldiff.report import evaluate_run
    class StopsAtTask1(GenerationEvaluator):
        def __call__(self, ctx):
            if ctx.k == 1: raise KeyboardInterrupt
            return super().__call__(ctx)
    from cldiff.runner import RunConfig, load_stream
    small = load_stream(RunConfig.from_dict(json.loads((r / "config.json").read_text()))).subset(64, 64)   # quick
    with pytest.raises(KeyboardInterrupt): evaluate_run(r, {"generation": StopsAtTask1(4, 2)}, stream=small)
    rc, out, err = cldiff(capsys, "report", r, "--out", tmp_path / "rep")
    assert rc == 0, err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "4 samples, 2 DDIM steps in r task 0; 8 samples, 2 DDIM steps in r task 1" in text, text


@pytest.mark.parametrize("content", ["folder", "[1, 2]", '{"pid": "bad"}', '{"host": "x"}', ""])
def test_odd_lock_files(r, capsys, content):
    lock = r / ".lock"
    if content == "folder": lock.mkdir()
    else: lock.write_text(content)
    args = ["run", *T, "--tasks", "2", "--out", r]
    if content == "folder": assert "is not a lock file" in one_line_error(capsys, *args)
    else:
        rc, out, err = cldiff(capsys, *args)   # no process holds it: taken, the run (already done) finishes
        assert rc == 0, err
        assert not lock.exists()
