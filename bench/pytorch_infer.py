#!/usr/bin/env python3
"""
Feature extraction in PyTorch for bench:infer (bench/infer.ts): the torchvision ResNet-18 (CIFAR
stem: conv1 3x3 stride 1, no max-pool) or ResNet-50 with fc = Identity, loaded strictly from the
weights simtrip exported in torchvision layout (.safetensors, read here with numpy: no safetensors
package needed), in eval mode under no_grad with torch.set_num_threads(cores).

    python3 bench/pytorch_infer.py --model r18|r50 --weights W.safetensors --size S --batch B
                                   [--iters 5] [--warmup 1] [--threads N] [--channels-last 0|1]
                                   [--export-onnx F]

--channels-last 1 runs model and input in NHWC memory format (PyTorch's faster CPU convolution path in
1.13; the default 0 is the plain NCHW model the issue's baseline used).

--export-onnx writes the model with torch.onnx.export (opset 17, dynamic batch, input NCHW) and exits,
for onnxruntime-node to run (the issue's reference). Otherwise prints one JSON line:
    {"framework": "pytorch", "torch": ..., "threads": ..., "img_per_s": ..., "peak_rss_mib": ...}
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def build(model):
    if model == "r18":
        net = torchvision.models.resnet18()
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif model == "r50":
        net = torchvision.models.resnet50()
    else:
        raise SystemExit(f"--model: got {model!r}, expected r18 or r50")
    net.fc = nn.Identity()
    return net


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--channels-last", type=int, default=0)
    p.add_argument("--export-onnx")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = build(a.model)
    state = {k: v for k, v in read_safetensors(a.weights).items() if not k.startswith("fc.")}
    net.load_state_dict(state, strict=True)
    net.eval()
    x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    if a.export_onnx:
        torch.onnx.export(net, x[:1], a.export_onnx, opset_version=17, input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
        print(json.dumps({"wrote": a.export_onnx}))
        return
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(a.warmup):
            net(x)
        t0 = time.perf_counter()
        for _ in range(a.iters):
            net(x)
        seconds = time.perf_counter() - t0
    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": bool(a.channels_last),
        "batch": a.batch,
        "iters": a.iters,
        "img_per_s": a.batch * a.iters / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    sys.exit(main())
