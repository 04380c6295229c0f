"""A process's own peak memory: ``VmHWM`` (peak resident set) from /proc/<pid>/status.

Not ``ru_maxrss``: for children, ``getrusage(RUSAGE_CHILDREN)`` reports the largest of them, and a child
started by vfork and exec can be charged the parent's memory. VmHWM is the kernel's count for that one
process, so each measured script reports its own (``own_peak_mb()`` in its final JSON line).
No imports beyond the standard library: the baseline imports this too.
"""

from __future__ import annotations

from pathlib import Path


def peak_mb(pid: int | str = "self") -> float | None:
    """VmHWM of ``pid`` in MiB; None when the process is gone or the kernel has no /proc status for it."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def own_peak_mb() -> float | None:
    return peak_mb("self")
