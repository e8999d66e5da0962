"""Speed benchmark: model-only and end-to-end pairs/s, pipeline efficiency, threads, and peak RSS vs run length.

    python bench/speed.py                 # full: 640x480 + 1024x768, T = 1..5, batch 1/2/4, RSS at 100 and 1000 pairs
    python bench/speed.py --quick         # 640x480, T = 3, batch 1, RSS at 50 and 200 pairs
    python bench/speed.py --compare-layouts 4   # NCHW vs NHWC (channels-last) network weights, alternated
    python bench/speed.py --compare-flips 4     # plain vs --flip-ensemble (4 network calls per step), alternated
    python bench/speed.py --compare-backends 3  # every installed backend, alternated: model only + `mmfuse run`
    python bench/speed.py --large               # one 4000x3000 pair through `mmfuse run`, default settings: peak RSS
    python bench/speed.py --flat 100            # `mmfuse run` over 100 640x480 pairs: s/pair first vs last tenth
    python bench/speed.py --compare-engines 3   # local engine (2 threads) vs --engine ray (2 single-thread actors)

Figures are medians over ``--repeats`` runs (the machines are noisy); the machine, date and torch threads are
printed and written with the figures to ``bench/results/speed-<date>.json``. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.device import describe_device, resolve_device
from mmfuse_cli.engine.backend import installed_backends
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import write_image
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint

HERE = Path(__file__).resolve().parent
DEG_A = Degradation(blur=1.5, scale=2, noise=0.05)
DEG_B = Degradation(blur=1.5, noise=0.05)


def scene(h: int, w: int, seed: int, colour: bool = False) -> np.ndarray:
    """A synthetic test image with smooth shading and edges, float32 [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.5 + 0.25 * np.sin(xx / (9 + seed % 5)) * np.cos(yy / 13)
    img += 0.2 * ((xx // 40 + yy // 40) % 2)
    img += rng.normal(0, 0.02, img.shape)
    img = np.clip(img, 0, 1).astype(np.float32)
    return np.stack([img, img[::-1], img[:, ::-1]], -1) if colour else img


def cpu_description() -> str:
    """CPU model and its widest vector extension (convolution speed depends on it: AVX-512 vs AVX2)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    model = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?"
    )
    flags = set(
        next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    )
    vector = next((name for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags), "none")
    return f"{model}, {vector}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_only(fuser_factory, size: tuple[int, int], steps: int, batch: int, repeats: int) -> float:
    """Pairs/s of Fuser.fuse_batch (decode/encode excluded) at ``size`` = (H, W) of the output grid."""
    h, w = size
    fuser = fuser_factory(steps)
    a = [scene(h // 2, w // 2, i) for i in range(batch)]
    b = [scene(h, w, 10 + i, colour=True) for i in range(batch)]
    seconds = median_seconds(lambda: fuser.fuse_batch(a, b, DEG_A, DEG_B), repeats)
    return batch / seconds


def compare_alternated(title: str, variants: dict, rounds: int, repeats: int) -> None:
    """Alternate two Fuser factories (so both share the machine's mood); print s/pair and the median ratio.

    ``variants`` maps a label to a factory ``steps -> Fuser``; the ratio is first / second (> 1: second faster).
    """
    print(f"\nmodel only, 640x480, T = 3, batch 1: s/pair, {title}")
    (first, first_factory), (second, second_factory) = variants.items()
    ratios = []
    for r in range(rounds):
        t1 = 1 / model_only(first_factory, (480, 640), 3, 1, repeats)
        t2 = 1 / model_only(second_factory, (480, 640), 3, 1, repeats)
        ratios.append(t1 / t2)
        print(f"  round {r + 1}: {first} {t1:.3f} s, {second} {t2:.3f} s, ratio x{t1 / t2:.2f}", flush=True)
    print(f"median ratio {first} / {second}: x{statistics.median(ratios):.2f}")


def make_folder(root: Path, n: int, size: tuple[int, int]) -> tuple[Path, Path]:
    """``n`` degraded pairs on disk (copies of a few distinct images; decoding cost is what matters)."""
    h, w = size
    a_dir, b_dir = root / "a", root / "b"
    a_dir.mkdir(parents=True)
    b_dir.mkdir(parents=True)
    distinct = [(scene(h // 2, w // 2, i), scene(h, w, 10 + i, colour=True)) for i in range(4)]
    blobs = []
    for i, (a, b) in enumerate(distinct):
        write_image(root / f"_a{i}.png", a, 8)
        write_image(root / f"_b{i}.png", b, 8)
        blobs.append(((root / f"_a{i}.png").read_bytes(), (root / f"_b{i}.png").read_bytes()))
    for i in range(n):
        a_bytes, b_bytes = blobs[i % len(blobs)]
        (a_dir / f"{i:05d}.png").write_bytes(a_bytes)
        (b_dir / f"{i:05d}.png").write_bytes(b_bytes)
    return a_dir, b_dir


def end_to_end(n: int, size: tuple[int, int], extra: list[str]) -> dict:
    """Run ``mmfuse run`` as a subprocess over ``n`` pairs; wall time (minus start-up) and the child's peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a_dir, b_dir = make_folder(root, n, size)
        flags = [
            "--a-blur",
            "1.5",
            "--a-scale",
            "2",
            "--a-noise",
            "0.05",
            "--b-blur",
            "1.5",
            "--b-noise",
            "0.05",
        ]
        # VmHWM (this process's own peak RSS); getrusage's ru_maxrss would include the parent's peak, which
        # Linux carries across fork + exec.
        probe = (
            "import sys, time, re\nfrom mmfuse_cli.cli import main\nt = time.perf_counter()\n"
            "sys.argv = ['mmfuse'] + sys.argv[1:]\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print('ELAPSED', time.perf_counter() - t, hwm, file=sys.stderr)"
        )
        cmd = [
            sys.executable,
            "-c",
            probe,
            "run",
            str(a_dir),
            str(b_dir),
            "-o",
            str(root / "out"),
            "-q",
            *flags,
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in proc.stderr.splitlines() if x.startswith("ELAPSED")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"mmfuse run failed: {proc.stderr[-2000:]}")
        _, elapsed, rss_kb = line[-1].split()
        with open(root / "out" / "run.csv") as handle:
            per_pair = [float(row["seconds"]) for row in csv.DictReader(handle)]
        return {
            "pairs": n,
            "seconds": float(elapsed),
            "pairs_per_s": n / float(elapsed),
            "peak_rss_mb": int(rss_kb) / 1024,
            "per_pair_s": per_pair,
        }


def compare_backends(model_factory, rounds: int, repeats: int, pairs: int) -> dict:
    """Alternate every installed backend ``rounds`` times: model-only s/pair (640x480, T = 3, batch 1) and
    end-to-end pairs/s of ``mmfuse run --backend NAME`` over ``pairs`` 640x480 pairs (start-up included);
    medians, and ratios to torch."""
    names = installed_backends()
    rows: dict[str, dict[str, list[float]]] = {n: {"model_s": [], "e2e_pps": []} for n in names}
    print(
        f"\nbackends {', '.join(names)}: model only s/pair (640x480, T = 3) and end to end over {pairs} pairs"
    )
    for r in range(rounds):
        for name in names:
            s_pair = 1 / model_only(lambda steps, n=name: model_factory(steps, n), (480, 640), 3, 1, repeats)
            e2e = end_to_end(pairs, (480, 640), ["--backend", name])
            rows[name]["model_s"].append(s_pair)
            rows[name]["e2e_pps"].append(e2e["pairs_per_s"])
            print(
                f"  round {r + 1}: {name:<12} model {s_pair:.3f} s/pair, end to end {e2e['pairs_per_s']:.2f} pairs/s",
                flush=True,
            )
    table = {}
    for name in names:
        model_s = statistics.median(rows[name]["model_s"])
        e2e_pps = statistics.median(rows[name]["e2e_pps"])
        table[name] = {"model_s_per_pair": model_s, "e2e_pairs_per_s": e2e_pps, **rows[name]}
    base = table["torch"]
    print(f"\n{'backend':<12} {'model s/pair':>12} {'x torch':>8} {'e2e pairs/s':>12} {'x torch':>8}")
    for name, row in table.items():
        row["model_speedup"] = base["model_s_per_pair"] / row["model_s_per_pair"]
        row["e2e_speedup"] = row["e2e_pairs_per_s"] / base["e2e_pairs_per_s"]
        print(
            f"{name:<12} {row['model_s_per_pair']:12.3f} {row['model_speedup']:8.2f} "
            f"{row['e2e_pairs_per_s']:12.2f} {row['e2e_speedup']:8.2f}"
        )
    return table


def compare_engines(checkpoint: Path, rounds: int, n: int, actors: int = 2) -> dict:
    """Alternate the local engine (one process, ``actors`` torch threads) and the Ray engine (``actors``
    single-thread actors) over the same ``n`` 640x480 pairs, both in this process on one local Ray.

    Throughput is steady-state pairs/s, (n - 1) / (last result - first result) seconds, so that neither side's
    start-up counts; start-up is reported apart: ``ray.init`` seconds, and the Ray engine's extra seconds to its
    first result (actor processes, imports, model load) over the local engine's.
    """
    import logging

    import ray

    from mmfuse_cli.batch.driver import drive
    from mmfuse_cli.batch.engines import EngineOptions
    from mmfuse_cli.batch.pipeline import run_pairs
    from mmfuse_cli.batch.ray_engine import RayEngine
    from mmfuse_cli.batch.stages import RunOptions
    from mmfuse_cli.degradation.resolve import SourceRequest
    from mmfuse_cli.pairing import pair_folders

    def timed(run) -> tuple[float, float, float]:
        stamps: list[float] = []
        start = time.perf_counter()
        run(lambda result: stamps.append(time.perf_counter()))
        return (n - 1) / (stamps[-1] - stamps[0]), stamps[0] - start, stamps[-1] - start

    start = time.perf_counter()
    ray.init(num_cpus=actors, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    init_s = time.perf_counter() - start
    torch.set_num_threads(actors)
    config = FuseConfig(device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        a_dir, b_dir = make_folder(Path(tmp), n, (480, 640))
        pairs = pair_folders(a_dir, b_dir).pairs
        for r in range(rounds):
            options = {
                name: RunOptions(
                    output_dir=Path(tmp) / f"{name}{r}",
                    source_a=SourceRequest(blur=DEG_A.blur, noise=DEG_A.noise, scale=DEG_A.scale),
                    source_b=SourceRequest(blur=DEG_B.blur, noise=DEG_B.noise, scale=DEG_B.scale),
                )
                for name in ("local", "ray")
            }
            fuser = Fuser(load_checkpoint(checkpoint), config)
            local = timed(lambda cb, f=fuser, o=options["local"]: run_pairs(pairs, f, o, cb))
            engine = EngineOptions("ray", actors=actors, threads_per_actor=1)
            distributed = timed(
                lambda cb, o=options["ray"], e=engine: drive(
                    pairs, RayEngine(checkpoint, config, o, e), o, cb
                )
            )
            rows.append({"local": local, "ray": distributed})
            print(
                f"  round {r + 1}: local {local[0]:.3f} pairs/s (first result {local[1]:.1f} s), "
                f"ray {distributed[0]:.3f} pairs/s (first result {distributed[1]:.1f} s), "
                f"ratio {distributed[0] / local[0]:.2f}",
                flush=True,
            )
    ray.shutdown()
    med = {k: statistics.median(row[k][0] for row in rows) for k in ("local", "ray")}
    extra = statistics.median(row["ray"][1] - row["local"][1] for row in rows)
    summary = {
        "pairs": n,
        "actors": actors,
        "local_pairs_per_s": med["local"],
        "ray_pairs_per_s": med["ray"],
        "ratio": statistics.median(row["ray"][0] / row["local"][0] for row in rows),
        "ray_init_s": init_s,
        "ray_extra_to_first_result_s": extra,
        "rounds": [
            {k: dict(zip(("pairs_per_s", "first_s", "last_s"), v)) for k, v in row.items()} for row in rows
        ],
    }
    print(
        f"median: local {med['local']:.3f} pairs/s, ray {med['ray']:.3f} pairs/s, ratio ray / local "
        f"{summary['ratio']:.2f}; start-up: ray.init {init_s:.1f} s + {extra:.1f} s more to the first result"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=None, help="checkpoint NAME or PATH (default: bundled ivif)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--tag", default="", help="suffix of the output file name (keeps an earlier run of the day)"
    )
    parser.add_argument("--rss-pairs", default=None, help="run lengths for the RSS check, e.g. 100,2000")
    parser.add_argument("--skip-model", action="store_true", help="only the end-to-end and RSS parts")
    parser.add_argument(
        "--layout",
        choices=("nhwc", "nchw"),
        default="nhwc",
        help="model-only part: the network's weight layout (nhwc = what Fuser uses; nchw = before 2026-12-01)",
    )
    parser.add_argument(
        "--compare-layouts",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only alternate nchw / nhwc model-only runs (640x480, T = 3) ROUNDS times and print the speed-up",
    )
    parser.add_argument(
        "--compare-flips",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only alternate plain / --flip-ensemble model-only runs (640x480, T = 3) ROUNDS times and print the cost",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto, torch, openvino or onnxruntime (model-only and end-to-end parts)",
    )
    parser.add_argument(
        "--compare-backends",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only alternate every installed backend ROUNDS times (model only and `mmfuse run`), medians and ratios",
    )
    parser.add_argument(
        "--e2e-pairs", type=int, default=8, help="pairs per end-to-end run of --compare-backends"
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="only one 4000x3000 pair through `mmfuse run` with default settings (slow): peak RSS and time",
    )
    parser.add_argument(
        "--flat",
        type=int,
        default=0,
        metavar="PAIRS",
        help="only `mmfuse run` over PAIRS 640x480 pairs: median s/pair of the first and the last tenth",
    )
    parser.add_argument(
        "--compare-engines",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only alternate the local engine (2 threads) and --engine ray (2 single-thread actors) ROUNDS times",
    )
    parser.add_argument("--engine-pairs", type=int, default=16, help="pairs per run of --compare-engines")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = load_checkpoint(resolve_checkpoint(args.model, task="ivif"), device=device)
    info = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} logical CPUs".strip(),
        "cpu": cpu_description(),
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": model.parameter_count(),
        "layout": args.layout,
        "backend": args.backend,
        "backends_installed": installed_backends(),
    }
    print(json.dumps(info))

    def factory(
        steps: int, backend: str = args.backend, layout: str = args.layout, flip_ensemble: bool = False
    ) -> Fuser:
        fuser = Fuser(
            model,
            FuseConfig(
                device=str(device),
                steps=steps,
                precision=args.precision,
                flip_ensemble=flip_ensemble,
                backend=backend,
            ),
        )
        if layout == "nchw":
            fuser.model.net.to(memory_format=torch.contiguous_format)  # undo Fuser's NHWC, to compare
        return fuser

    if args.compare_layouts:
        variants = {
            "nchw": lambda steps: factory(steps, "torch", "nchw"),
            "nhwc": lambda steps: factory(steps, "torch", "nhwc"),
        }
        compare_alternated(
            "NCHW weights vs NHWC (channels_last, Fuser's default)",
            variants,
            args.compare_layouts,
            args.repeats,
        )
        return
    if args.compare_engines:
        print(
            "\nend to end, 640x480 output, T = 3, batch 1: local engine vs ray engine, steady-state pairs/s"
        )
        summary = compare_engines(
            resolve_checkpoint(args.model, task="ivif"), args.compare_engines, args.engine_pairs
        )
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"engines-{info['date']}{'-' + args.tag if args.tag else ''}.json"
        path.write_text(json.dumps({**info, **summary}, indent=2) + "\n")
        print(f"wrote {path}")
        return
    if args.compare_flips:
        variants = {"flip-ensemble": lambda steps: factory(steps, flip_ensemble=True), "plain": factory}
        compare_alternated("--flip-ensemble vs plain", variants, args.compare_flips, args.repeats)
        return
    special = None
    if args.compare_backends:
        special = {"backends": compare_backends(factory, args.compare_backends, args.repeats, args.e2e_pairs)}
    elif args.large:
        print(
            "\none 4000x3000 pair (a: 2000x1500 x2 down, b: RGB), `mmfuse run --backend", args.backend + "`"
        )
        large = end_to_end(1, (3000, 4000), ["--backend", args.backend])
        print(f"  {large['seconds']:.1f} s, peak RSS {large['peak_rss_mb']:.0f} MB")
        special = {"large": large}
    elif args.flat:
        flat = end_to_end(args.flat, (480, 640), ["--backend", args.backend])
        tenth = max(1, args.flat // 10)
        first, last = (
            statistics.median(flat["per_pair_s"][sl]) for sl in (slice(tenth), slice(-tenth, None))
        )
        print(
            f"\n{args.flat} pairs, --backend {args.backend}: {flat['pairs_per_s']:.2f} pairs/s, peak RSS "
            f"{flat['peak_rss_mb']:.0f} MB; median s/pair first tenth {first:.3f}, last tenth {last:.3f}"
        )
        special = {"flat": {**flat, "first_tenth_s": first, "last_tenth_s": last}}
    if special is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        kind = next(iter(special))
        tag = f"-{args.tag}" if args.tag else ""
        path = args.out / f"speed-{info['date']}-{device.type}-{kind}{tag}.json"
        path.write_text(json.dumps({**info, **special}, indent=2) + "\n")
        print(f"\nwrote {path}")
        return

    sizes = [(480, 640)] if args.quick else [(480, 640), (768, 1024)]
    step_list = [3] if args.quick else [1, 2, 3, 4, 5]
    batches = [1] if args.quick else [1, 2, 4]
    table = []
    print("\nmodel only (decode/encode excluded), median pairs/s")
    print(f"{'size':>9} {'T':>2} {'batch':>5} {'pairs/s':>8} {'s/pair':>7}")
    for h, w in sizes if not args.skip_model else []:
        for steps in step_list:
            for batch in batches if steps == 3 else [1]:
                pps = model_only(factory, (h, w), steps, batch, args.repeats)
                table.append({"size": f"{w}x{h}", "steps": steps, "batch": batch, "pairs_per_s": pps})
                print(f"{w:>4}x{h:<4} {steps:>2} {batch:>5} {pps:8.2f} {1 / pps:7.3f}")

    print("\nend to end (`mmfuse run` on a folder of PNGs, 640x480 output, T = 3) vs model only")
    n_small, n_large = (50, 200) if args.quick else (100, 1000)
    if args.rss_pairs:
        n_small, n_large = (int(x) for x in args.rss_pairs.split(","))
    if args.skip_model:
        table.append(
            {
                "size": "640x480",
                "steps": 3,
                "batch": 1,
                "pairs_per_s": model_only(factory, (480, 640), 3, 1, args.repeats),
            }
        )
    model_pps = next(
        r["pairs_per_s"] for r in table if r["size"] == "640x480" and r["steps"] == 3 and r["batch"] == 1
    )
    e2e = end_to_end(n_small, (480, 640), [])
    efficiency = e2e["pairs_per_s"] / model_pps
    print(
        f"  {n_small} pairs: {e2e['pairs_per_s']:.2f} pairs/s end to end, model only {model_pps:.2f} -> efficiency {efficiency:.2f}"
    )

    print("\npeak RSS vs run length (small 160x128 pairs, so that 1000 pairs stay quick)")
    rss = [end_to_end(n, (128, 160), []) for n in (n_small, n_large)]
    for r in rss:
        print(f"  {r['pairs']:>5} pairs: peak RSS {r['peak_rss_mb']:.0f} MB, {r['pairs_per_s']:.1f} pairs/s")
    result = {**info, "model_only": table, "end_to_end": e2e, "efficiency": efficiency, "rss": rss}
    args.out.mkdir(parents=True, exist_ok=True)
    layout = "" if args.layout == "nhwc" else f"-{args.layout}"
    tag = f"-{args.tag}" if args.tag else ""
    path = args.out / f"speed-{info['date']}-{device.type}{layout}{tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
