"""The fusion tasks mmfuse knows, in one place: every flag, manifest and checkpoint check reads them from here."""

from __future__ import annotations

from typing import Literal, cast

from mmfuse_cli.errors import InvalidValueError

Task = Literal["ivif", "mif"]
"""``ivif``: infrared + visible; ``mif``: medical (CT / PET / SPECT + MRI)."""

TASKS: tuple[Task, ...] = ("ivif", "mif")

DEFAULT_TASK: Task = "ivif"
"""The task of a run that names neither a task nor a checkpoint."""

TASK_DESCRIPTIONS: dict[str, str] = {
    "ivif": "infrared + visible",
    "mif": "medical: CT, PET or SPECT + MRI",
}


def check_task(value: str, field: str = "task") -> Task:
    """``value`` as a :data:`Task`: the one membership check.

    Raises:
        InvalidValueError: (``field``) not one of :data:`TASKS`.
    """
    if value not in TASKS:
        raise InvalidValueError(field, f"must be one of {', '.join(TASKS)}, got {value!r}")
    return cast(Task, value)


__all__ = ["DEFAULT_TASK", "TASKS", "TASK_DESCRIPTIONS", "Task", "check_task"]
