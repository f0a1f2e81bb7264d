#!/usr/bin/env python3
"""The PyTorch peer of bench/stepbench: one training step of the MLP
784-500-500-10 at batch 128, float32, flooded loss |J - b| + b, SGD with
momentum, on random data. Prints the median milliseconds per step.

Usage: torch_step.py THREADS [STEPS] [BLOCKS]. THREADS goes to
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
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(784, 500), torch.nn.ReLU(),
    torch.nn.Linear(500, 500), torch.nn.ReLU(),
    torch.nn.Linear(500, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.rand(128, 784)
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
