#!/usr/bin/env python3
"""The PyTorch peer of bench/stepbench: one training step of the MLP
784-500-500-10, or (MODEL cnn) of the LeNet-style network Conv2d(1, 16, 5,
padding=2), ReLU, MaxPool2d(2), Conv2d(16, 32, 5, padding=2), ReLU,
MaxPool2d(2), Linear(1568, 256), ReLU, Linear(256, 10) on 1×28×28 inputs, at
batch 128, float32, flooded loss |J - b| + b, SGD with momentum, on random
data. Prints the median milliseconds per step.

Usage: torch_step.py THREADS [STEPS] [BLOCKS] [MODEL]. THREADS goes to
torch.set_num_threads (torch's own intra-op threads). Debian's torch does its
matrix products in OpenBLAS, whose threads torch.set_num_threads does not
limit: set OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) in the environment too.
"""
import statistics
import sys
import time

import torch

threads = int(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
blocks = int(sys.argv[3]) if len(sys.argv) > 3 else 5
kind = sys.argv[4] if len(sys.argv) > 4 else "mlp"
torch.set_num_threads(threads)
torch.manual_seed(0)
if kind == "cnn":
    # Convolutions run on oneDNN (MKL-DNN) where torch has it, as Debian's
    # does, the fastest CPU path torch offers.
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(1568, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    x = torch.rand(128, 1, 28, 28)
else:
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 500), torch.nn.ReLU(),
        torch.nn.Linear(500, 500), torch.nn.ReLU(),
        torch.nn.Linear(500, 10),
    )
    x = torch.rand(128, 784)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
y = torch.randint(0, 10, (128,))
b = 0.1


def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    ((loss - b).abs() + b).backward()
    opt.step()


for _ in range(20):
    step()
times = []
for _ in range(blocks):
    t = time.perf_counter()
    for _ in range(steps):
        step()
    times.append((time.perf_counter() - t) / steps * 1000)
print(f"{statistics.median(times):.3f} torch_{torch.__version__}")
