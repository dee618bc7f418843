"""Store failures logged at a bounded rate: a full disk or a lost database fails every
write, many times a second; the log gets the first failure with its traceback, then one
line per interval saying how many more there were (thousands of tracebacks in seconds
filled the rest of the disk)."""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["QuietLog"]


class QuietLog:
    """``error`` on ``logger`` at most once per ``interval`` seconds (the first with
    ``exc_info`` when asked), counting the ones left out."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._next = -float("inf")
        self._left_out = 0
        self._traced = False

    def error(self, message: str, *args: Any, exc_info: bool = False) -> bool:
        """Log ``message`` now or count it; whether it was logged."""
        now = time.monotonic()
        if now < self._next:
            self._left_out += 1
            return False
        self._next = now + self.interval
        if self._left_out:
            message += f" ({self._left_out} more store failures in the last {self.interval:g} s)"
            self._left_out = 0
        trace = exc_info and not self._traced
        self._traced = self._traced or trace
        self.logger.error(message, *args, exc_info=trace)
        return True
