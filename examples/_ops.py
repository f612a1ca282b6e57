"""Operations endpoints of the example services, for the incidents deploy/local/incident causes.

Each changes what the service really does (a thread that spins, a consumer that stops
consuming) for a bounded time, and can be undone at once; none of it is telemetry.
"""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Query

router = APIRouter(prefix="/ops", tags=["operations"])
_burn_until = 0.0
_burning = threading.Lock()


def _burn() -> None:
    """Spin in pure Python until the deadline: one core's worth of CPU, as a hot loop would."""
    with _burning:
        while time.monotonic() < _burn_until:
            sum(range(10_000))


@router.post("/burn-cpu")
def burn_cpu(seconds: float = Query(gt=0, le=900, description="At most 15 minutes.")) -> dict:
    """Burn one core for `seconds` (again: extends the deadline)."""
    global _burn_until
    _burn_until = time.monotonic() + seconds
    if not _burning.locked():
        threading.Thread(target=_burn, name="ops-burn-cpu", daemon=True).start()
    return {"burning_for_s": seconds}


@router.delete("/burn-cpu")
def stop_burning() -> dict:
    global _burn_until
    _burn_until = 0.0
    return {"burning_for_s": 0}


_held: list[bytearray] = []


@router.post("/hold-memory")
def hold_memory(
    mb: int = Query(gt=0, le=4096, description="How much to hold, at most 4 GiB."),
    seconds: float = Query(gt=0, le=900, description="At most 15 minutes."),
) -> dict:
    """Hold `mb` MiB, every page written (so resident), as a leak would, for `seconds`."""
    block = bytearray(b"\x01") * (mb * 2**20)
    _held.append(block)
    threading.Timer(seconds, _release, args=(id(block),)).start()
    return {"held_mb": sum(len(b) for b in _held) // 2**20}


def _release(block_id: int) -> None:
    _held[:] = [block for block in _held if id(block) != block_id]  # by identity: comparing is O(size)


@router.delete("/hold-memory")
def free_memory() -> dict:
    _held.clear()
    return {"held_mb": 0}


class Pause:
    """A bounded pause: set for `seconds`, or until cleared, whichever comes first."""

    def __init__(self) -> None:
        self._until = 0.0

    def set(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds

    def clear(self) -> None:
        self._until = 0.0

    def is_set(self) -> bool:
        return time.monotonic() < self._until
