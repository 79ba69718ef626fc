"""Completions per tier over the last minute, kept by each worker and published in its status.

``kqueue stats`` adds up the live workers' figures, so the rate needs no extra writes to the
backend per job. A worker that died takes its last minute with it (the figure is for live workers).
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60


class RateWindow:
    """Counts events per key in one-second buckets over the last ``WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self._buckets: deque[tuple[int, dict[str, int]]] = deque()

    def add(self, key: str, now_s: float, count: int = 1) -> None:
        """Count ``count`` events of ``key`` at wall-clock ``now_s`` (seconds)."""
        second = int(now_s)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append((second, {}))
            self._trim(second)
        bucket = self._buckets[-1][1]
        bucket[key] = bucket.get(key, 0) + count

    def per_minute(self, now_s: float) -> dict[str, int]:
        """Events per key in the last ``WINDOW_S`` seconds before ``now_s``."""
        self._trim(int(now_s))
        totals: dict[str, int] = {}
        for _, bucket in self._buckets:
            for key, count in bucket.items():
                totals[key] = totals.get(key, 0) + count
        return totals

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - WINDOW_S:
            self._buckets.popleft()
