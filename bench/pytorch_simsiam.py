#!/usr/bin/env python3
"""
The SimSiam training step of bench/train_throughput.ts, in PyTorch, for a reference img/s on the same
machine. Standalone: needs torch only (no torchvision).

    python3 bench/pytorch_simsiam.py [--arch resnet18|resnet50] [--width 64] [--size 32] [--batch 64]
                                     [--proj-dim 2048] [--steps 5] [--warmup 1]
                                     [--device cpu|cuda] [--amp 0|1]

Model (the same as simtrip builds for the benchmark): ResNet-18 (BasicBlocks) or ResNet-50
(Bottlenecks, stride in the 3x3 as torchvision) with the CIFAR stem (conv1 3x3 stride 1, no max-pool;
the ImageNet stem, 7x7 stride 2 + max-pool, when --size > 64, as in ours), zero-initialised last BN
gamma of each residual branch; SimSiam projector with 2 layers
(Linear(no bias) -> BN -> ReLU -> Linear(no bias) -> BN(affine=False), hidden = out = proj-dim); predictor
Linear(no bias) -> BN -> ReLU -> Linear(bias), hidden = proj-dim/4; loss D(p1, z2)/2 + D(p2, z1)/2 with
z detached; SGD lr 0.01, momentum 0.9, weight decay 5e-4 on every parameter.

On --device cuda: channels_last tensors, cudnn.benchmark on, PyTorch's default TF32 policy (convolutions
yes, matmuls no), time taken after torch.cuda.synchronize(), and the peak of
torch.cuda.max_memory_allocated() reported as peak_gpu_mib; --amp 1 runs torch.autocast(float16) with a
GradScaler. The same model as ../shared/gpu/torch_simsiam_cuda.py, so its reference numbers compare.

Inputs are random tensors (two views, NCHW float32): augmentation is NOT included, whereas ours times
augmentation as part of each step (its JSON reports data_ms separately). A step is forward of both views
+ backward + optimizer update, timed to the loss being read back (.item()), as ours does with dataSync.

Prints progress on stderr and one JSON line on stdout:
    {"framework": "pytorch", "torch": ..., "threads": ..., "img_per_s": ..., "step_ms": ..., "peak_rss_mib": ...}
"""
import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, zero_init):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if zero_init:
            nn.init.zeros_(self.bn2.weight)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, 0, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, zero_init):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        if zero_init:
            nn.init.zeros_(self.bn3.weight)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, 0, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + shortcut)


LAYOUTS = {'resnet18': (BasicBlock, [2, 2, 2, 2]), 'resnet50': (Bottleneck, [3, 4, 6, 3])}


class ResNet(nn.Module):
    def __init__(self, arch, width, cifar_stem=True, zero_init_residual=True):
        super().__init__()
        self.cifar_stem = cifar_stem
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False) if cifar_stem else nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        stages = []
        block, layers = LAYOUTS[arch]
        for s, n in enumerate(layers):
            planes = width * 2**s
            blocks = []
            for b in range(n):
                stride = 2 if b == 0 and s > 0 else 1
                blocks.append(block(cin, planes, stride, zero_init_residual))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        if not self.cifar_stem:
            y = F.max_pool2d(y, 3, 2, 1)
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))
        return torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)


class SimSiam(nn.Module):
    def __init__(self, backbone, proj_dim, pred_hidden):
        super().__init__()
        self.backbone = backbone
        d = backbone.feature_dim
        # proj_layers 2 (the CIFAR recipe); hidden = proj_dim, as ours when proj_hidden is unset.
        self.projector = nn.Sequential(
            nn.Linear(d, proj_dim, bias=False),
            nn.BatchNorm1d(proj_dim),
            nn.ReLU(inplace=True),
            nn.Linear(proj_dim, proj_dim, bias=False),
            nn.BatchNorm1d(proj_dim, affine=False),
        )
        self.predictor = nn.Sequential(
            nn.Linear(proj_dim, pred_hidden, bias=False),
            nn.BatchNorm1d(pred_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(pred_hidden, proj_dim),
        )

    def forward(self, x1, x2):
        # Views pass separately so BN sees one view's batch (as ours and the official code do).
        z1 = self.projector(self.backbone(x1))
        z2 = self.projector(self.backbone(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return p1, p2, z1.detach(), z2.detach()


def neg_cos(p, z):
    return -F.cosine_similarity(p, z, dim=1).mean()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--width', type=int, default=64)
    ap.add_argument('--size', type=int, default=32)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--proj-dim', type=int, default=2048)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--arch', default='resnet18', choices=sorted(LAYOUTS))
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--amp', type=int, default=0, choices=[0, 1])
    # Accepted so the same flag list as ours can be passed.
    ap.add_argument('--engine', default='auto')
    return ap.parse_args(argv)


def main(argv):
    o = parse_args(argv)
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cuda = o.device == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True

    model = SimSiam(ResNet(o.arch, o.width, cifar_stem=o.size <= 64), o.proj_dim, max(o.proj_dim // 4, 1)).to(o.device)
    layout = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(memory_format=layout)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = None
    if cuda and o.amp:
        scaler = torch.amp.GradScaler() if hasattr(torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler()
    autocast = (lambda: torch.autocast('cuda', dtype=torch.float16)) if scaler is not None else contextlib.nullcontext
    x1 = torch.randn(o.batch, 3, o.size, o.size, device=o.device).to(memory_format=layout)
    x2 = torch.randn(o.batch, 3, o.size, o.size, device=o.device).to(memory_format=layout)

    times = []
    for i in range(o.warmup + o.steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            p1, p2, z1, z2 = model(x1, x2)
            loss = neg_cos(p1, z2) * 0.5 + neg_cos(p2, z1) * 0.5
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        loss_value = loss.item()
        dt = (time.perf_counter() - t0) * 1000
        measured = i >= o.warmup
        if measured:
            times.append(dt)
        sys.stderr.write(f"step {i + 1}/{o.warmup + o.steps}{'' if measured else ' (warm-up)'}: {dt:.0f} ms, loss {loss_value:.4f}\n")

    step_ms = sum(times) / max(len(times), 1)
    result = {
        'framework': 'pytorch',
        'torch': torch.__version__,
        'python': platform.python_version(),
        'threads': torch.get_num_threads(),
        'model': f'{o.arch} width {o.width}, {o.size}px, proj {o.proj_dim}{", amp" if o.amp else ""}',
        'device': torch.cuda.get_device_name() if cuda else 'cpu',
        'batch': o.batch,
        'img_per_s': o.batch / (step_ms / 1000) if step_ms > 0 else 0.0,
        'step_ms': step_ms,
        'augmentation': False,
        # ru_maxrss is KiB on Linux.
        'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'peak_gpu_mib': torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
