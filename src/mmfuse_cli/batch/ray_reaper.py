"""When this process starts a Ray for a run and then dies without shutting it down (``kill -9``), Ray's own
processes (GCS, raylet, the dashboard and runtime-env agents, idle workers) outlive it for a minute or two. The
reaper is a small watchdog process that ends them at once.

:func:`start_reaper` is called right after ``ray.init`` started a local Ray, with the pids of the processes that
Ray started (``node.all_processes``). The watchdog keeps a list of those processes and of all their descendants
(agents and workers, whose parent is the raylet), each with its start time, refreshed every second. When the
driver is gone (its end of a pipe closes: any exit, ``kill -9`` included) or :meth:`Reaper.stop` is called after a
clean ``ray.shutdown()``, it sends SIGKILL to each listed process that still runs with the same start time (so a
reused pid is never hit). Linux only (it reads ``/proc``); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_WATCHDOG = r"""# mmfuse ray reaper
import os, select, signal, sys

def table():
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(entry)] = (int(fields[1]), fields[19])  # ppid, start time
    return out

def tree(roots, procs):
    found = {pid: procs[pid][1] for pid in roots if pid in procs}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in procs.items():
            if ppid in found and pid not in found and pid != os.getpid():
                found[pid] = start
                grew = True
    return found

pipe, roots = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
known = {}
while True:
    known.update(tree(set(roots) | set(known), table()))
    ready, _, _ = select.select([pipe], [], [], 1.0)
    if ready and not os.read(pipe, 64):
        break
procs = table()
for pid, start in tree(set(roots) | set(known), procs).items() | known.items():
    if pid in procs and procs[pid][1] == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


class Reaper:
    """The watchdog of one local Ray (see the module docstring)."""

    def __init__(self, process: subprocess.Popen, pipe: int):
        self.process = process
        self._pipe = pipe

    def stop(self, timeout: float = 10.0) -> None:
        """After ``ray.shutdown()``: end what is left of that Ray now, and wait for the watchdog."""
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_reaper(pids: list[int]) -> Reaper | None:
    """A watchdog for the Ray processes ``pids`` (and their descendants), or None where there is no ``/proc``."""
    if not pids or not Path("/proc/self/stat").exists():
        return None
    read_end, write_end = os.pipe()  # not inherited by Ray's children (non-inheritable by default)
    process = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(read_end), *map(str, pids)],
        pass_fds=(read_end,),
        start_new_session=True,  # a Ctrl-C of the driver's terminal must not end the watchdog first
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(read_end)
    return Reaper(process, write_end)


def local_ray_pids(ray) -> list[int]:
    """The pids of the processes the running ``ray.init`` started on this machine (none when it joined a
    cluster); Ray's private node table, read defensively."""
    try:
        node = ray._private.worker.global_worker.node
        return [info.process.pid for infos in node.all_processes.values() for info in infos if info.process]
    except Exception:  # noqa: BLE001 - a Ray without that table: no reaper, Ray's own clean-up stands
        return []


__all__ = ["Reaper", "local_ray_pids", "start_reaper"]
