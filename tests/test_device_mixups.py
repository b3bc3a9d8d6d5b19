"""Device mix-ups caught without a GPU: the device-sensitive code runs on a stand-in device.

A GPU run crashes when a network or tensor stays on the CPU while the rest of the work is on the GPU
(issue 7: the classifier's previous copy, rebuilt from a CPU checkpoint, was never moved). On a CPU-only
machine every `.to(device)` is a no-op, so such a line can be deleted and every CPU test still passes.

Here the same code runs under torch's `FakeTensorMode` with the device set to `meta`: tensors carry only
their shape, dtype and device, and every operation first checks that its inputs share one device, as a GPU
would. A module or tensor that is not moved meets a `meta` tensor and raises. Reading a value back
(`float(loss)`, `.item()`) has nothing to read, so the mode answers such reads with a fixed number; the
checks are therefore about where tensors live, never about what they hold (metrics that go through numpy
cannot run here and are covered by `bench/gpu_check.py` on a real device).

The last test is the control: it deletes the one line that fixed issue 7 from `train_solver_task` and
shows that this harness then fails with the error the GPU gave.
"""
import contextlib
import inspect
import sys
import textwrap
from unittest import mock

import pytest
import torch

from cldiff import solver as solver_module
from cldiff import utils
from cldiff.data import fashion_mnist_tasks
from cldiff.metrics import ClassifierFeatures, features_of, load_metrics_classifier, predict_classes
from cldiff.registry import STRATEGIES, make_strategy
from cldiff.replay import frozen_copy, shipped_teacher
from cldiff.runner import evaluate_task, run_config, train_task
from cldiff.sample import ddim_sample
from cldiff.schedules import paper_schedule
from cldiff.solver import Solver, diffusion_replay, train_solver_task
from cldiff.unet import make_unet

from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._pytree import tree_leaves
from torch.utils._python_dispatch import _disable_current_modes

STAND_IN = torch.device("meta")


class _DeviceChecked(FakeTensorMode):
    """Run every operation as usual, except one whose inputs sit on more than one device (or that moves a tensor to
    another device): that one goes through the fake mode, which checks, as a GPU would, that the mix is allowed
    (a 0-d CPU scalar may join a device tensor, a CPU weight or image may not). Its result is a fake tensor, which
    has a shape, a dtype and a device only.

    Neither `meta` nor fake tensors hold values, so a value read back from one (`float(loss)`) is answered with a
    fixed number."""
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = tree_leaves((args, kwargs))
        tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
        fake = any(isinstance(t, FakeTensor) for t in tensors)
        if func is torch.ops.aten._local_scalar_dense.default and (fake or tensors[0].device == STAND_IN):
            t = tensors[0]
            return True if t.dtype == torch.bool else 0.25 if t.dtype.is_floating_point else 1
        devices = {t.device for t in tensors} | {x for x in leaves if isinstance(x, torch.device)}
        if not fake and len(devices) <= 1:
            return func(*args, **kwargs)
        return super().__torch_dispatch__(func, types, args, kwargs)


@contextlib.contextmanager
def on_stand_in_device():
    "Run cldiff with `meta` as its device: `resolve_device` lets it through; every op checks its inputs' devices."
    real = utils.resolve_device
    def resolve(device=None):
        return STAND_IN if device is not None and torch.device(device) == STAND_IN else real(device)
    with contextlib.ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if name.startswith("cldiff") and getattr(module, "resolve_device", None) is real:
                stack.enter_context(mock.patch.object(module, "resolve_device", resolve))
        # files are read for real, onto the CPU (torch.load would otherwise give shapes only under a fake mode)
        load = torch.load
        def real_load(*args, **kwargs):
            with _disable_current_modes(): return load(*args, **kwargs)
        stack.enter_context(mock.patch("torch.load", real_load))
        stack.enter_context(_DeviceChecked(allow_non_fake_inputs=True))
        yield STAND_IN


def _on(module: torch.nn.Module, device: torch.device) -> bool:
    return all(t.device == device for t in [*module.parameters(), *module.buffers()])


@pytest.fixture(scope="module")
def stream():
    return fashion_mnist_tasks(image_size=16).subset(64, 32)


def _model():
    # built on the CPU and moved before the fake mode starts, as the runner builds and then moves it
    return make_unet("tiny", seed=0, sample_size=16).to(STAND_IN)


def test_harness_catches_a_network_left_on_the_cpu():
    "The control for the harness itself: a CPU network fed device tensors fails, as on a GPU."
    model, cpu_model = _model(), make_unet("tiny", seed=0, sample_size=16)
    with on_stand_in_device() as dev:
        x, t = torch.randn(2, 1, 16, 16, device=dev), torch.full((2,), 10, device=dev)
        assert model(x, t).sample.device == dev
        with pytest.raises(RuntimeError, match="device"):
            cpu_model(x, t)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_trains_a_replay_task_on_the_device(name, stream):
    cfg = run_config("test", name, n_tasks=5, iters_per_task=2)
    model, strategy = _model(), make_strategy(name, **cfg.strategy_options)
    strategy.end_task(stream, 0)      # what task 1 needs of task 0 (ER's buffer, cbgd's labeller), as a run does
    with on_stand_in_device() as dev:
        stats = train_task(model, frozen_copy(model), strategy, stream, 1, paper_schedule(), cfg, progress=False,
                           precision="fp32")
        assert stats["iters"] >= 1 and _on(model, dev)


def test_sampling_and_the_denoising_diagnostic_follow_the_model(stream):
    model, cfg = _model(), run_config("test", "gd")
    with on_stand_in_device() as dev:
        images, trajectory = ddim_sample(model, 4, paper_schedule(), steps=2, seed=0, return_trajectory=True)
        assert images.shape == (4, 1, 16, 16) and trajectory.x_t.shape == (3, 4, 1, 16, 16)   # brought back to the CPU
        evaluate_task(model, stream, 1, paper_schedule(), cfg.evaluation)
        assert _on(model, dev)


def test_saved_networks_load_onto_the_device():
    "The shipped classifier and a saved diffusion model (both read from CPU files) land on the device asked for."
    with on_stand_in_device() as dev:
        classifier = load_metrics_classifier(device=dev, train_if_missing=False, progress=False)
        teacher, schedule = shipped_teacher(dev)
        assert _on(classifier, dev) and _on(teacher, dev)
        fake = ddim_sample(teacher, 6, schedule, steps=2, seed=0, device=dev)
        assert predict_classes(classifier, fake.to(dev)).shape == (6,)
        assert features_of(fake, ClassifierFeatures(classifier)).shape[0] == 6


def _solver_with_cpu_previous(stream, train=train_solver_task):
    "Issue 7's path: the generator on the device, the previous classifier rebuilt from a CPU state dict."
    generator = _model()
    previous = Solver()   # on the CPU, as SolverEvaluator rebuilds it from the saved state
    with on_stand_in_device() as dev:
        solver = Solver()
        replay = diffusion_replay(generator, paper_schedule(), steps=2, seed=0)
        train(solver, stream[1].train_images[:16], stream[1].train_labels[:16], 1, replay, previous.eval(),
              epochs=1, batch_size=8, seed=0, device=dev)
        return solver, previous, dev


def test_the_classifier_with_replay_and_a_previous_copy_from_the_cpu(stream):
    solver, previous, dev = _solver_with_cpu_previous(stream)
    assert _on(solver, dev) and _on(previous, dev)


def test_control_the_issue_7_crash_comes_back_without_its_fix(stream):
    "Delete the line that moves `previous` to the device: the harness must then fail as the GPU did."
    source = textwrap.dedent(inspect.getsource(train_solver_task))
    fix = "if previous is not None: previous.to(device)"
    assert fix in source, "the fix moved: update this control to delete the line that moves `previous`"
    broken = "\n".join(line for line in source.splitlines() if fix not in line)
    broken = broken.replace("def train_solver_task(", "def _train_solver_task_without_fix(")
    # defined inside cldiff.solver, so it sees that module's names (and the harness's patches of them)
    exec(compile(broken, "<train_solver_task without the issue-7 fix>", "exec"), vars(solver_module))
    namespace = {"train_solver_task": vars(solver_module).pop("_train_solver_task_without_fix")}
    with pytest.raises(RuntimeError, match="device"):
        _solver_with_cpu_previous(stream, namespace["train_solver_task"])
