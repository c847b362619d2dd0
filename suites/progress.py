"""Progress display: a tqdm bar on a terminal, plain periodic lines when output is a file or pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Step, loss, throughput and ETA for one run; `update(n, **fields)` after each step or unit."""

    def __init__(self, total: int, description: str, unit: str = "step", initial: int = 0,
                 stream: TextIO | None = None, plain_interval_s: float = 30.0, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.total, self.count, self.unit = total, initial, unit
        self.description = description
        self.enabled = enabled
        self.plain_interval_s = plain_interval_s
        self._started = time.monotonic()
        self._initial = initial
        self._last_plain = 0.0
        self._bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, unit=unit, file=self.stream,
                             dynamic_ncols=True, smoothing=0.1)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1, **fields: float) -> None:
        self.count += n
        if not self.enabled:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in fields.items()}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_plain >= self.plain_interval_s or self.count >= self.total:
            self._last_plain = now
            elapsed = now - self._started
            done = self.count - self._initial
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.count) / rate if rate > 0 else float("nan")
            extras = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"[{self.description}] {self.count}/{self.total} {self.unit}s, {rate:.3g} {self.unit}/s, "
                  f"ETA {eta:.0f}s {extras}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
