"""Time the CIFAR-10 metrics classifier's training step at CIFAR-10's real size (a benchmark, not a test).

CIFAR-10 is not on the machines cldiff is built on, so this times the recipe (`CLASSIFIER_RECIPES["cifar10"]`: the
width-48 network, batches of 128 cycling through its image sizes, random flips) on made-up images of the same
shape and count; the time per step does not depend on what the pixels show. Prints seconds per step and the
implied time of the whole training (15 epochs of 50,000 images). Accuracy cannot be measured without the data.

    OMP_NUM_THREADS=1 python bench/cifar10_classifier_cost.py --steps 40 [--device cuda]
"""
import argparse
import time

import torch

from cldiff.metrics import CLASSIFIER_RECIPES, MetricsClassifier, classifier_step
from cldiff.utils import resolve_device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    device, recipe = resolve_device(a.device), CLASSIFIER_RECIPES["cifar10"]
    g = torch.Generator().manual_seed(0)
    images = {s: torch.rand(a.batch_size * 4, 3, s, s, generator=g) * 2 - 1 for s in recipe.sizes}
    labels = torch.randint(0, 10, (a.batch_size * 4,), generator=g)
    model = MetricsClassifier(width=recipe.width, in_channels=3).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    def step(i):    # the library's own training step (without the one-cycle schedule, which costs nothing)
        idx = torch.randint(0, len(labels), (a.batch_size,), generator=g)
        classifier_step(model, opt, images[recipe.sizes[i % len(recipe.sizes)]][idx], labels[idx], recipe.hflip, g)
    for i in range(4): step(i)                 # warm-up
    if device.type == "cuda": torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(a.steps): step(i)
    if device.type == "cuda": torch.cuda.synchronize(device)
    per_step = (time.perf_counter() - start) / a.steps
    total_steps = recipe.epochs * (50_000 // a.batch_size)
    print(f"device {device}, threads {torch.get_num_threads()}: {per_step * 1000:.1f} ms per step of {a.batch_size} "
          f"(sizes {recipe.sizes}, width {recipe.width}); {recipe.epochs} epochs = {total_steps:,} steps = "
          f"{per_step * total_steps / 60:.1f} min")


if __name__ == "__main__":
    main()
