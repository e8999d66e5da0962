"""The fusion tasks mmfuse knows, in one place: every flag, manifest and checkpoint check reads them from here."""

from __future__ import annotations

TASKS: tuple[str, ...] = ("ivif", "mif")
"""``ivif``: infrared + visible; ``mif``: medical (CT / PET / SPECT + MRI)."""

TASK_DESCRIPTIONS: dict[str, str] = {
    "ivif": "infrared + visible",
    "mif": "medical: CT, PET or SPECT + MRI",
}

__all__ = ["TASKS", "TASK_DESCRIPTIONS"]
