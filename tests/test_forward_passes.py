"""Each strategy's `forward_passes()` (the cost the results tables and lesson 15 report) equals what training does: the
images that go through the student's and the teacher's UNet in a run of replay iterations, counted by forward hooks
(a student backward counted as two forwards). A strategy whose replay changes without its count fails here."""
import pytest
import torch

from cldiff.data import fashion_mnist_tasks, random_batches
from cldiff.registry import STRATEGIES, make_strategy
from cldiff.replay import frozen_copy
from cldiff.runner import BUILTIN_STRATEGY_MODULES  # noqa: F401  (registers every built-in strategy)
from cldiff.schedules import paper_schedule
from cldiff.train import noise_images
from cldiff.unet import make_unet

BATCH = 8
# the labeller of cbgd is trained for a sliver of an epoch: its passes are not UNet passes and are not counted
OPTIONS = {"cbgd": dict(labeller_epochs=0.01, labeller_pool=8)}


@pytest.fixture(scope="module")
def setting():
    stream = fashion_mnist_tasks(image_size=16)
    student = make_unet("tiny", seed=0, sample_size=16)
    return stream, student, frozen_copy(student), paper_schedule()


def _images_through(model):
    count = [0]
    handle = model.register_forward_hook(lambda m, args, out: count.__setitem__(0, count[0] + len(args[0])))
    return count, handle


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_forward_passes_match_the_images_training_puts_through_each_unet(setting, name):
    stream, student, teacher, schedule = setting
    strategy = make_strategy(name, seed=0, **OPTIONS.get(name, {}))
    strategy.end_task(stream, 0)
    images, _ = strategy.training_data(stream, 1)
    g = torch.Generator().manual_seed(0)
    batches = random_batches(len(images), BATCH, g)
    # SGGD's share of generated images is random per call: enough iterations for its mean (a tolerance of 3.5 standard deviations); NIGD serves 10 iterations a call
    iters = 60 if name == "sggd" else 20
    student_count, h1 = _images_through(student)
    teacher_count, h2 = _images_through(teacher)
    try:
        with torch.no_grad():
            for _ in range(iters):
                current = noise_images(images[next(batches)], schedule, g)
                replay = strategy.replay_batch(current, teacher if strategy.uses_teacher else None, schedule, 1, g)
                x = current.x_t if replay is None else torch.cat([current.x_t, replay.x_t])
                t = current.t if replay is None else torch.cat([current.t, replay.t])
                student(x, t)
    finally:
        h1.remove(); h2.remove()
    measured = (3 * student_count[0] + teacher_count[0]) / (iters * BATCH)
    tolerance = 0.15 if name == "sggd" else 1e-9
    assert abs(measured - strategy.forward_passes(schedule)) <= tolerance, (name, measured, strategy.forward_passes(schedule))
