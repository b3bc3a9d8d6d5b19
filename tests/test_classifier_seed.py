"""`train_metrics_classifier` is a function of its seed: the same seed gives the same network (dropout's draws are
seeded too), so a CIFAR-10 classifier trained on first use is the same on every machine with the same data and
software. A small recipe (width 8, one size, one epoch) on the real Fashion-MNIST keeps this quick."""
import torch

from cldiff.metrics import train_metrics_classifier


def _train(seed):
    model, acc = train_metrics_classifier(epochs=1, width=8, sizes=(16,), batch_size=256, seed=seed, progress=False)
    return model.state_dict(), acc


def test_the_same_seed_trains_the_same_classifier():
    (a, acc_a), (b, acc_b), (c, _) = _train(0), _train(0), _train(1)
    assert acc_a == acc_b and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)          # and the seed does change it
