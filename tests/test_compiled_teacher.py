"""The teacher through the real `torch.compile` (`CompiledTeacher`, what `--compile` uses): a GD replay call gives the
eager teacher's samples and targets to float32 rounding, and outputs held across calls are not overwritten. Compiling
takes minutes on a CPU, so this runs only with `CLDIFF_TEST_FLAGS=slow`; on a GPU it also goes through CUDA graphs."""
import os

import pytest
import torch

from cldiff.registry import make_strategy
from cldiff.replay import frozen_copy
from cldiff.runner import CompiledTeacher
from cldiff.schedules import paper_schedule
from cldiff.train import predict_noise
from cldiff.unet import make_unet

pytestmark = pytest.mark.skipif("slow" not in os.environ.get("CLDIFF_TEST_FLAGS", ""),
                                reason="compiles a UNet (minutes on a CPU): set CLDIFF_TEST_FLAGS=slow")


def test_compiled_teacher_gives_the_eager_targets_and_keeps_its_outputs():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    plain = frozen_copy(make_unet("tiny", seed=0, sample_size=16)).to(device)
    compiled = CompiledTeacher(plain)
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((8,), 500, device=device)
    first = predict_noise(compiled, x, t)
    predict_noise(compiled, torch.zeros_like(x), t)             # a second replay of the same graph
    torch.testing.assert_close(first, predict_noise(plain, x, t), rtol=1e-4, atol=1e-4)
    gd, schedule = make_strategy("gd", replay_chunk=2), paper_schedule()
    eager, fast = (gd.make_replay(net, 8, 4, schedule, x, torch.Generator().manual_seed(1)) for net in (plain, compiled))
    for a, b in zip(eager, fast):
        torch.testing.assert_close(b.x0, a.x0, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(b.target, a.target, rtol=1e-3, atol=1e-3)
