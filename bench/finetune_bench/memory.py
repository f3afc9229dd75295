"""The peak resident memory of this process over a stretch of work."""

from __future__ import annotations

import resource
from pathlib import Path

__all__ = ["PeakRss"]


class PeakRss:
    """Peak resident memory of this process over a stretch of work.

    Linux: ``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``);
    elsewhere it is ``getrusage``'s lifetime peak.
    """

    def __init__(self) -> None:
        self.before = _status_bytes("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False

    def peak(self) -> int:
        hwm = _status_bytes("VmHWM") if self.reset else None
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
