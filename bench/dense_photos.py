"""Restoration gain on dense natural photographs, outside the IR/visible/medical data the models learned.

    python bench/dense_photos.py                                  # the shipped IVIF checkpoint
    python bench/dense_photos.py OLD.safetensors drfusion-ivif-s  # several models side by side

Crops of scikit-image's ``camera`` (source a) and ``astronaut`` (source b, luminance) photographs, 128 and 256 px
(the crops of ``tests/conftest.py``), degraded like ``bench/quality.py`` does (8-bit files): noiseless blur 1.5
and noise 0.05. Prints, per model, each restored source's PSNR gain over its pseudo-inverse start (dB); for blur
also with the inputs declared exact (``bits 0``, i.e. ``mmfuse run --input-bits 0``). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from conftest import astronaut, camera  # noqa: E402
from quality import SCENARIOS, observe, pseudo_inverse  # noqa: E402

from mmfuse_cli.fuse import Fuser  # noqa: E402
from mmfuse_cli.io import to_gray  # noqa: E402
from mmfuse_cli.metrics.pixel import psnr_reference as psnr  # noqa: E402
from mmfuse_cli.model import load_checkpoint  # noqa: E402
from mmfuse_cli.weights import resolve_checkpoint  # noqa: E402

# the benchmark's blur and noise scenarios (both sources degraded alike)
DEGRADATIONS = {name: SCENARIOS[name][0] for name in ("blur", "noise")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["drfusion-ivif-s"], help="checkpoint NAME or PATH")
    args = parser.parse_args()
    fusers = {spec: Fuser(load_checkpoint(resolve_checkpoint(spec, task="ivif", progress=False))) for spec in args.models}
    print("| crop | scenario | start a / b (dB) | " + " | ".join(f"{Path(s).name} gain a / b" for s in fusers) + " |")
    print("|---|---|---|" + "---|" * len(fusers))
    for size in (128, 256):
        a, b = camera(size, size), to_gray(astronaut(size, size))
        for name, deg in DEGRADATIONS.items():
            ya, yb = observe(a, deg, "dense", "a", 0), observe(b, deg, "dense", "b", 0)
            sa, sb = pseudo_inverse(ya, deg), pseudo_inverse(yb, deg)
            cells = []
            for fuser in fusers.values():
                gains = []
                for bits in ((8, 8), (0, 0)) if name == "blur" else ((8, 8),):
                    out = fuser.fuse(ya, yb, deg, deg, bits)
                    label = "" if bits[0] == 8 else " (bits 0)"
                    gains.append(f"{psnr(out.a, a) - psnr(sa, a):+.2f} / {psnr(out.b, b) - psnr(sb, b):+.2f}{label}")
                cells.append("; ".join(gains))
            print(f"| {size} px | {name} | {psnr(sa, a):.2f} / {psnr(sb, b):.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
