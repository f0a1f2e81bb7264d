#!/usr/bin/env python3
"""A floodtune worker in PyTorch, through the HTTP API.

It trains the trials of a study on the data that `floodtune dataset export
--spec SPEC --out DIR` wrote for the study's spec (the same split and the same
noisy labels): the MLP or the CNN of the trial's configuration (a CNN when it
has convolutional layers, `conv`, on images of the shape that meta.json
records; an MLP of fixed defaults when the study is not the built-in
trainer's), the flooded loss |J - b| + b with the trial's flood level b, the
validation accuracy reported after every epoch, and the outcome told with the
test accuracy. It asks for trials until the study's budget is spent (or
--trials have run).

  floodtune dataset export --spec examples/mnist-noise20.yaml --out out/mnist
  FLOODTUNE_TOKEN=ftk_... python3 torch_worker.py --server http://localhost:8080 \\
      --study mnist-noise20 --data out/mnist

Needs numpy and torch (Debian: python3-torch) and clients/python/floodtune_client.py
(found beside this file or in the repository's clients/python).
"""
import argparse
import json
import math
import os
import signal
import socket
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy and torch load OpenBLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from floodtune_client import Client, LeaseLost  # noqa: E402

# The built-in trainer's defaults, for a trial that comes without a configuration.
DEFAULTS = {"hidden": [500, 500], "optimizer": "momentum", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
            "batch_size": 128, "epochs": 10}
np = torch = F = None  # imported by main once the arguments are parsed: --help needs neither


def load_data(path):
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    data = {}
    for split in ("train", "val", "test"):
        m = meta["splits"][split]
        x = np.fromfile(os.path.join(path, m["x"]), "<f4").reshape(m["n"], meta["features"])
        y = np.fromfile(os.path.join(path, m["y"]), "<i4").astype(np.int64)
        data[split] = (torch.from_numpy(x), torch.from_numpy(y))
    return meta, data


def trial_config(trial):
    cfg = dict(DEFAULTS)
    if trial.config:
        cfg.update(trial.config)
    else:  # another trainer's study: take the searched options we know
        cfg.update({k: v for k, v in trial.params.items() if k in DEFAULTS})
    cfg["momentum"] = cfg["momentum"] or 0.9  # 0 means 0.9
    return cfg


def image_shape(cfg, meta, path):
    """The (channels, height, width) of the rows for a convolutional network,
    or None when the trial's network is an MLP."""
    if not cfg.get("conv"):
        return None
    im = meta.get("image")
    if not im:
        raise ValueError(f"the trial's network is convolutional but {os.path.join(path, 'meta.json')} has no image "
                         "shape (\"image\"): the export is not of images, or comes from a floodtune that did not "
                         "record it; re-export the study's data with this floodtune "
                         "(floodtune dataset export --spec SPEC --out DIR)")
    shape = (int(im["channels"]), int(im["height"]), int(im["width"]))
    if shape[0] * shape[1] * shape[2] != meta["features"]:
        raise ValueError(f"{os.path.join(path, 'meta.json')}: images of {shape[0]}x{shape[1]}x{shape[2]} "
                         f"are not rows of {meta['features']} features")
    return shape


def new_model(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def new_cnn(shape, conv, hidden, classes):
    """The convolutional layers conv (each a convolution, a ReLU and, when
    pool >= 2, max pooling) on images of shape (C, H, W), then the dense
    layers hidden and the output layer."""
    layers, channels = [], shape[0]
    for layer in conv:
        out = int(layer["channels"])
        layers.append(torch.nn.Conv2d(channels, out, int(layer["kernel"]), stride=max(int(layer.get("stride") or 0), 1),
                                      padding=int(layer.get("padding") or 0)))
        layers.append(torch.nn.ReLU())
        if int(layer.get("pool") or 0) >= 2:
            layers.append(torch.nn.MaxPool2d(int(layer["pool"])))
        channels = out
    layers.append(torch.nn.Flatten())
    with torch.no_grad():  # the size of the flattened features, from one blank image
        features = torch.nn.Sequential(*layers)(torch.zeros(1, *shape)).shape[1]
    return torch.nn.Sequential(*layers, *new_model([features, *hidden, classes]))


def new_optimizer(model, cfg):
    lr, wd = cfg["lr"], cfg["weight_decay"]
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    momentum = cfg["momentum"] if cfg["optimizer"] == "momentum" else 0.0
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)


def flooded_loss(logits, y, b, method):
    if method == "iflood":  # each sample's loss flooded, then the mean
        return ((F.cross_entropy(logits, y, reduction="none") - b).abs() + b).mean()
    return (F.cross_entropy(logits, y) - b).abs() + b  # the minibatch's mean loss flooded


def evaluate(model, x, y, batch=1000):
    """The mean cross-entropy and the accuracy, in batches of batch rows."""
    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out = model(x[s:s + batch])
            loss += F.cross_entropy(out, y[s:s + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[s:s + batch]).sum().item()
    return loss / len(x), correct / len(x)


def run_trial(trial, cfg, shape, meta, data):
    """Train the trial's network (a CNN on images of shape, or an MLP when
    shape is None) and tell its outcome."""
    b, method, batch = trial.flood_level, trial.flood_method, int(cfg["batch_size"])
    torch.manual_seed(trial.seed)
    if shape is None:
        model = new_model([meta["features"], *cfg["hidden"], meta["classes"]])
        eval_batch = 1000
    else:
        model = new_cnn(shape, cfg["conv"], cfg["hidden"], meta["classes"])
        data = {split: (x.reshape(len(x), *shape), y) for split, (x, y) in data.items()}
        eval_batch = 250  # a CNN's activations are many times its input
    opt = new_optimizer(model, cfg)
    shuffle = torch.Generator().manual_seed(trial.seed)
    x, y = data["train"]
    for epoch in range(1, int(cfg["epochs"]) + 1):
        order = torch.randperm(len(x), generator=shuffle)
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            loss = flooded_loss(model(x[idx]), y[idx], b, method)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"the training loss diverged at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _, val_acc = evaluate(model, *data["val"], batch=eval_batch)
        if trial.report(epoch, val_acc):  # the study's pruner says stop
            trial.prune(attrs={"val_acc": val_acc, "epochs": epoch, "worker_lang": "python"})
            return f"pruned at epoch {epoch}, val_acc {val_acc:.4f}"
    train_loss, _ = evaluate(model, *data["train"], batch=eval_batch)
    _, test_acc = evaluate(model, *data["test"], batch=eval_batch)
    trial.tell(val_acc, attrs={"test_acc": test_acc, "val_acc": val_acc, "train_loss": train_loss,
                               "worker_lang": "python"})
    return f"val_acc {val_acc:.4f}, test_acc {test_acc:.4f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="the floodtune server's URL, e.g. http://localhost:8080")
    p.add_argument("--study", required=True, help="the study's name")
    p.add_argument("--data", required=True, help="the directory that `floodtune dataset export` wrote")
    p.add_argument("--token", help="a worker token (default: $FLOODTUNE_TOKEN)")
    p.add_argument("--ca-file", help="the CA certificate of an https server")
    p.add_argument("--worker", default=f"torch@{socket.gethostname()}:{os.getpid()}", help="this worker's name")
    p.add_argument("--trials", type=int, default=0, help="stop after this many trials (default: 0, until the budget is spent)")
    args = p.parse_args()

    global np, torch, F
    import numpy as np
    import torch
    import torch.nn.functional as F

    # SIGTERM (a pod's end, a scheduler) stops like Ctrl-C: the running
    # trial is given back, to be run again by another worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    torch.set_num_threads(1)
    meta, data = load_data(args.data)
    client = Client(args.server, token=args.token, ca_file=args.ca_file)
    done = 0
    while args.trials <= 0 or done < args.trials:
        trial = client.ask(args.study, worker=args.worker)
        if trial is None:
            print(f"{args.worker}: the budget of study {args.study} is spent", file=sys.stderr)
            return 0
        cfg = trial_config(trial)
        try:
            shape = image_shape(cfg, meta, args.data)
        except ValueError:  # the data here do not fit the trial: give it back, for a worker whose data do
            try:
                trial.release()
            except Exception:  # noqa: BLE001 - the lease runs out and the trial is retried anyway
                pass
            raise
        try:
            with trial:  # renews the lease; an exception tells the trial failed
                outcome = run_trial(trial, cfg, shape, meta, data)
        except FloatingPointError as e:
            outcome = f"failed: {e}"
        except LeaseLost:
            outcome = "lease lost (the server retries the trial)"
        done += 1
        print(f"{args.worker}: trial {trial.number} b={trial.flood_level:.4g} ({trial.flood_method}): {outcome}",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
