"""``mmfuse info``: versions, the auto-detected device, the backends found and the thread count."""

from __future__ import annotations

import platform


def info() -> None:
    """Print versions, the auto-detected device (cuda if available, else cpu), the network backends installed
    and the one ``--backend auto`` picks, and the CPU threads used."""
    import imageio
    import numpy
    import safetensors
    import torch

    from mmfuse_cli import __version__
    from mmfuse_cli.device import describe_device, resolve_device
    from mmfuse_cli.engine.backend import pick_backend
    from mmfuse_cli.engine.backends import BACKENDS, installed_backends

    device = resolve_device("auto")
    lines = [
        ("mmfuse", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", numpy.__version__),
        ("imageio", imageio.__version__),
        ("safetensors", getattr(safetensors, "__version__", "?")),
        ("device", describe_device(device)),
        (
            "backends",
            ", ".join(
                name if name == "torch" else f"{name} {BACKENDS[name].version()}"
                for name in installed_backends()
            ),
        ),
        ("auto backend", pick_backend("auto", device)),
        ("threads", str(torch.get_num_threads())),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
