"""CPU-seconds each benchmark process used over a run, read from /proc (user + system time).

A process's CPU here is its own, that of the children it has reaped (``cutime``/``cstime``) and that of its live
descendants, so a server's worker processes and a cluster's backends count wherever they are when it is read.
The measured script itself is a child of the benchmark: its CPU comes from ``resource.getrusage`` around it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU-seconds of the process and its reaped children); None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / TICKS


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _processes() -> dict[int, tuple[int, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def tree_cpu(root: int, processes: dict[int, tuple[int, float]] | None = None) -> float:
    """CPU-seconds of ``root`` and every live descendant (each with its reaped children)."""
    processes = processes if processes is not None else _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            total += processes[pid][1]
            todo += children.get(pid, [])
    return total


def find_roots(postgres_port: int | None = None) -> dict[str, int]:
    """The benchmark's long-lived processes: its emulator and Prefect server (descendants of this process, found
    by command line) and, given its port, the PostgreSQL postmaster."""
    processes = _processes()
    mine, todo = set(), [os.getpid()]
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    while todo:
        pid = todo.pop()
        mine.add(pid)
        todo += children.get(pid, [])
    roots = {}
    for pid in sorted(mine):
        line = _cmdline(pid)
        if "emulator" not in roots and "-m emulator" in line:
            roots["emulator"] = pid
        elif "prefect_server" not in roots and "prefect" in line and "server start" in line:
            roots["prefect_server"] = pid
    if postgres_port:
        for pid, (parent, _) in processes.items():
            line = _cmdline(pid)
            if line.startswith("/usr/lib/postgresql") and f"-p {postgres_port} " in line and "postgres" not in _cmdline(parent):
                roots["postgres"] = pid
    return roots


class CpuMeter:
    """CPU-seconds of each named process tree between ``start()`` and ``stop()``, with the wall time."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots, self.before, self.began = roots, {}, 0.0

    def _read(self) -> dict[str, float]:
        processes = _processes()
        return {name: tree_cpu(pid, processes) for name, pid in self.roots.items()}

    def start(self) -> None:
        self.before, self.began = self._read(), time.monotonic()

    def stop(self) -> dict[str, float]:
        after = self._read()
        used = {name: round(after[name] - self.before.get(name, 0.0), 1) for name in after}
        used["wall"] = round(time.monotonic() - self.began, 1)
        used["load_average_1min"] = round(os.getloadavg()[0], 2)
        return used
