"""Cost of one network call at 640 x 480, v1 (the shipped checkpoint) against v2 (random weights of the same
architecture as the issue-36 runs), in torch and in OpenVINO: the figure to read before training a wider model.

Usage: python bench/network_cost.py [--threads 2] [--repeats 7]
Prints median seconds per call and the v2 / v1 ratios. Run it on a quiet machine (pause trainings with
``kill -STOP``); the medians of one run are comparable with each other only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from mmfuse_cli.engine.runtimes import runtime_denoiser
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.weights.resolve import resolve_checkpoint

V2 = ModelConfig(base_channels=64, levels=3, blocks_per_level=1, unshuffle=2, max_channels=128)


def _median(call, repeats: int) -> float:
    call()  # warm-up (and OpenVINO's compile for this shape)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(net, repeats: int, threads: int) -> dict[str, float]:
    z, p = torch.rand(1, 3, 480, 640), torch.rand(1, 1, 480, 640)
    c = torch.rand(1, net.config.cond_dim)
    net = net.eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch_s = _median(lambda: net.denoise(z, p, p, c), repeats)
    out = {"torch_s": round(torch_s, 4), "params": sum(t.numel() for t in net.parameters())}
    try:
        ov = runtime_denoiser("openvino", net, threads)
    except ImportError:
        return out
    feed = {"z": z.numpy(), "pinv1": p.numpy(), "pinv2": p.numpy(), "cond": c.numpy()}
    out["openvino_s"] = round(_median(lambda: ov.run(feed), repeats), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MMFUSE_CACHE", tempfile.mkdtemp(prefix="mmfuse-cost-"))
    torch.manual_seed(0)
    v1 = load_checkpoint(resolve_checkpoint(None, task="ivif", progress=False)).net
    v2 = FusionModel(V2).net
    result = {"v1": measure(v1, args.repeats, args.threads), "v2": measure(v2, args.repeats, args.threads)}
    for backend in ("torch_s", "openvino_s"):
        if backend in result["v2"]:
            result[f"ratio_{backend}"] = round(result["v2"][backend] / result["v1"][backend], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
