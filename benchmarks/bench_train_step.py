"""Benchmark: training images per second of the full SCT recipe's step (ResNet-50, 256 px), ours against plain PyTorch.

The step of the ``full`` profile of ``notebooks/reproduce_sct.md`` on CUB (the released recipe of
Xuan et al., ECCV 2020, github.com/littleredxh/HardNegative): a P×K = 64×2 batch of
``uint8`` 281×281 cached squares → ``RandomCrop(256)`` + flip + normalise on the device → ResNet-50 → Linear(2048,
64) → L2 → SCT loss → SGD (momentum 0). The batches are random tensors shaped like CUB batches (the real data cannot
be reached from the machines this suite is developed on), so the figure is the model's throughput, not the disk's.

Measured in one run, alternating, ``--repeats`` times:

* **ours**: ``dml.train.build_model`` / ``build_loss`` / :class:`dml.data.augment.BatchAugment` from a config
  resolved by ``dml.reproduce`` (the notebook's own config), the trainer's autocast + ``GradScaler`` logic;
* **reference**: the same computation written directly with ``torchvision.models.resnet50``, a per-image crop and
  flip loop, ``torch.nn.functional`` and a plain hardest-negative NCA loss (SCT's easy branch; the hard branch costs
  the same), the way a reader would write a first version;

each in float32, with AMP (float16 autocast), and with AMP + ``channels_last``. Images/s counts training images
through forward, backward and the optimiser step, after ``--warmup`` steps, with ``torch.cuda.synchronize`` around
the timed region. Usage::

    python benchmarks/bench_train_step.py                              # on a CUDA machine
    python benchmarks/bench_train_step.py --device cpu --batch 8 --size 64 --steps 2 --warmup 1   # plumbing check

Not a timed test; the numbers depend on the GPU (benchmarks/README.md records the device with each figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dml.data.augment import DATASET_STATS, BatchAugment
from dml.reproduce import load_experiment
from dml.train.trainer import build_loss, build_model
from dml.utils import run_info, seed_everything

MODES = {"fp32": (False, False), "amp": (True, False), "amp+channels_last": (True, True)}


def ours(config_overrides: list[str], *, device: torch.device, amp: bool, channels_last: bool, cache: int, size: int):
    experiment = load_experiment(Path(__file__).resolve().parents[1] / "notebooks" / "sct")
    config = experiment.config(
        "SCT",
        dataset="cub200",
        profile="full",
        seed=0,
        output_dir="runs/bench",
        overrides=config_overrides
        + [f"amp={str(amp).lower()}", f"channels_last={str(channels_last).lower()}", "model.pretrained=false"],
    )
    seed_everything(0, deterministic=False)
    model = build_model(config).to(device).train()
    loss_fn = build_loss(config, num_classes=100).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr, momentum=0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    augment = BatchAugment(
        size=size, crop="random", resize=None, flip=0.5, mean=DATASET_STATS["cub200"][0], std=DATASET_STATS["cub200"][1]
    )
    generator = torch.Generator(device="cpu").manual_seed(0)

    def step(images: torch.Tensor, labels: torch.Tensor) -> float:
        batch = augment(images, generator=generator)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
            embeddings = model(batch)
        loss = loss_fn(embeddings.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step, config


def reference(*, device: torch.device, amp: bool, channels_last: bool, size: int, dim: int, lr: float):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    net.fc = torch.nn.Linear(2048, dim)
    net = net.to(device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    mean = torch.tensor(DATASET_STATS["cub200"][0], device=device).view(1, 3, 1, 1)
    std = torch.tensor(DATASET_STATS["cub200"][1], device=device).view(1, 3, 1, 1)

    def step(images: torch.Tensor, labels: torch.Tensor) -> float:
        crops = []
        for image in images:  # per-image RandomCrop + flip, as torchvision transforms in a Dataset would do
            top = int(torch.randint(0, image.shape[-2] - size + 1, (1,)))
            left = int(torch.randint(0, image.shape[-1] - size + 1, (1,)))
            crop = image[:, top : top + size, left : left + size]
            crops.append(crop.flip(-1) if float(torch.rand(1)) < 0.5 else crop)
        batch = (torch.stack(crops).float().div_(255) - mean) / std
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
            embeddings = net(batch)
        f = F.normalize(embeddings.float(), dim=1)
        sim = f @ f.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=device)
        s_ap = sim.masked_fill(~same | eye, -2).max(dim=1).values
        s_an = sim.masked_fill(same, -2).max(dim=1).values
        loss = -F.log_softmax(torch.stack([s_ap, s_an], dim=1) / 0.1, dim=1)[:, 0].mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step


def images_per_second(
    step, images: torch.Tensor, labels: torch.Tensor, *, steps: int, warmup: int, device: torch.device
) -> float:
    for _ in range(warmup):
        step(images, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        last = step(images, labels)
    float(last)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(labels) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128, help="images per batch (P×2; 128 in the CUB recipe)")
    parser.add_argument("--size", type=int, default=256, help="training crop (256 in the recipe)")
    parser.add_argument("--cache", type=int, default=281, help="side of the cached squares (281 in the recipe)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    images = torch.randint(0, 256, (args.batch, 3, args.cache, args.cache), dtype=torch.uint8, device=device)
    labels = torch.arange(args.batch, device=device) // 2
    rows = []
    for mode in args.modes:
        amp, channels_last = MODES[mode]
        our_step, config = ours(
            [], device=device, amp=amp, channels_last=channels_last, cache=args.cache, size=args.size
        )
        ref_step = reference(
            device=device,
            amp=amp,
            channels_last=channels_last,
            size=args.size,
            dim=config.model.embedding_dim,
            lr=config.optim.lr,
        )
        measured = {"ours": [], "reference": []}
        for _ in range(args.repeats):
            for name, step in (("ours", our_step), ("reference", ref_step)):
                measured[name].append(
                    images_per_second(step, images, labels, steps=args.steps, warmup=args.warmup, device=device)
                )
        ours_ips, ref_ips = statistics.median(measured["ours"]), statistics.median(measured["reference"])
        rows.append(
            {"mode": mode, "ours": ours_ips, "reference": ref_ips, "ratio": ours_ips / ref_ips, "all": measured}
        )
        del our_step, ref_step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"ResNet-50 SCT training step, batch {args.batch}, crop {args.size} from {args.cache}, device {name}")
    print(f"{'mode':<20}{'ours img/s':>12}{'reference img/s':>17}{'ours/ref':>10}")
    for row in rows:
        print(f"{row['mode']:<20}{row['ours']:>12.1f}{row['reference']:>17.1f}{row['ratio']:>10.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": name, "args": vars(args), "rows": rows, "run_info": run_info(seeds=0)}, indent=2)
        )


if __name__ == "__main__":
    main()
