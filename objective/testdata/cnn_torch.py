#!/usr/bin/env python3
"""Writes cnn_torch.json: a small convolutional network's flooded loss and
gradients as PyTorch computes them, for TestConvMatchesPyTorch.

The network is the test's testConvNet: input 2×7×6, Conv2d(2, 3, 3,
padding=1), ReLU, MaxPool2d(2), Conv2d(3, 4, 2, stride=2, padding=1), ReLU,
flatten, Linear(16, 5), ReLU, Linear(5, 3); a batch of 4 images. Inputs and
weights come from fixed formulas and are written in PyTorch's layouts
(convolution weights [out, in, ky, kx], the flattening channel by channel).

Usage: /usr/bin/python3 objective/testdata/cnn_torch.py > objective/testdata/cnn_torch.json
(Debian's python3-torch).
"""
import json
import math

import torch

torch.set_num_threads(1)
n = 4
x = torch.tensor([[math.sin(0.7 * i + 0.3 * img) for i in range(2 * 7 * 6)] for img in range(n)],
                 dtype=torch.float32).reshape(n, 2, 7, 6)
y = torch.tensor([(img * 2 + 1) % 3 for img in range(n)])
shapes = [(3, 2, 3, 3), (3,), (4, 3, 2, 2), (4,), (5, 16), (5,), (3, 5), (3,)]
params = []
for k, shape in enumerate(shapes):
    size = math.prod(shape)
    fan_in = math.prod(shapes[k - 1][1:]) if len(shape) == 1 else math.prod(shape[1:])
    v = [math.sin(1.3 * j + 0.9 * k) / math.sqrt(fan_in) + 0.05 for j in range(size)]
    params.append(torch.tensor(v, dtype=torch.float32).reshape(shape).requires_grad_())


def forward(x):
    h = torch.nn.functional.conv2d(x, params[0], params[1], padding=1).relu()
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.nn.functional.conv2d(h, params[2], params[3], stride=2, padding=1).relu()
    h = h.flatten(1)
    h = torch.nn.functional.linear(h, params[4], params[5]).relu()
    return torch.nn.functional.linear(h, params[6], params[7])


cases = []
for method, level in [("none", 0.0), ("flood", 0.5), ("flood", 5.0), ("iflood", 1.1)]:
    for p in params:
        p.grad = None
    losses = torch.nn.functional.cross_entropy(forward(x), y, reduction="none")
    j = losses.mean()
    if method == "flood":
        cost = (j - level).abs() + level
    elif method == "iflood":
        cost = ((losses - level).abs() + level).mean()
    else:
        cost = j
    cost.backward()
    cases.append({
        "method": method, "level": level, "loss": j.item(), "cost": cost.item(),
        "losses": losses.tolist(),
        "grads": [p.grad.flatten().tolist() for p in params],
    })

json.dump({
    "torch": torch.__version__,
    "x": x.flatten().tolist(), "y": y.tolist(),
    "params": [p.detach().flatten().tolist() for p in params],
    "shapes": shapes, "cases": cases,
}, __import__("sys").stdout, indent=1)
print()
