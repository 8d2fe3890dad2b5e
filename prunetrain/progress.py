"""One progress display for searches, baselines and comparisons.

On a terminal it is a tqdm bar redrawn in place. Anywhere else (a log file,
a pipe, a batch job) it writes plain lines, one every :data:`LOG_INTERVAL`
seconds and one at the end, with no carriage returns, so a log reads as a
log. Both show the same fields: done/total, elapsed time, an ETA, and the
caller's ``name=value`` pairs.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

#: Seconds between plain progress lines when stderr is not a terminal.
LOG_INTERVAL = 10.0
#: Seconds between redraws of the bar on a terminal.
BAR_INTERVAL = 0.25


def format_seconds(seconds: float) -> str:
    """``75.3`` -> ``'1m15s'``; ``3.21`` -> ``'3.2s'``; ``nan`` -> ``'?'``.

    Examples
    --------
    >>> format_seconds(3.21), format_seconds(75.3), format_seconds(3725), format_seconds(float("nan"))
    ('3.2s', '1m15s', '1h02m', '?')
    """
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Progress of one job of ``total`` units (evaluations, seconds, epochs or runs).

    Parameters
    ----------
    total : float
        Units of the whole job.
    unit : str
        What a unit is (``"eval"``, ``"s"``, ``"epoch"``, ``"run"``).
    label : str
        What is running, e.g. ``"accumulate on digits"``.
    enabled : bool
        Show nothing when false (``--quiet``).
    stream : file, optional
        Where to write; default ``sys.stderr`` (looked up when created).
    interval : float, optional
        Seconds between plain lines; default :data:`LOG_INTERVAL`.

    Examples
    --------
    >>> import io
    >>> log = io.StringIO()
    >>> p = Progress(10, unit="epoch", label="dense", stream=log, interval=0)
    >>> p.update(5, loss=0.25)
    >>> p.close(10, loss=0.125)
    >>> "\\r" in log.getvalue(), log.getvalue().splitlines()[-1].split(",")[0]
    (False, 'dense: done 10/10 epoch (100%)')
    """

    def __init__(
        self,
        total: float,
        *,
        unit: str,
        label: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.total = float(total)
        self.unit = unit
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.interval = LOG_INTERVAL if interval is None else float(interval)
        self.terminal = enabled and is_terminal(self.stream)
        self.start = time.perf_counter()
        self.n = 0.0
        self.fields: dict[str, object] = {}
        self._shown_at = -math.inf
        self._bar = None
        if self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                unit=unit,
                desc=label,
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
                "[{elapsed}<{remaining}{postfix}]",
            )

    def elapsed(self) -> float:
        """Seconds since the display was created."""
        return time.perf_counter() - self.start

    def eta(self) -> float:
        """Seconds left at the rate so far (``nan`` before any progress)."""
        if self.n <= 0:
            return math.nan
        return max(0.0, self.elapsed() * (self.total - self.n) / self.n)

    def update(self, n: float, *, force: bool = False, **fields: object) -> None:
        """Record ``n`` units done and the fields to show; redraw if it is time (or ``force``)."""
        self.n, self.fields = float(n), fields
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._shown_at < (BAR_INTERVAL if self.terminal else self.interval):
            return
        self._shown_at = now
        if self._bar is not None:
            self._bar.n = min(self.n, self.total)
            self._bar.set_postfix_str(self._fields_text(), refresh=True)
        else:
            self._print(self._line(""))

    def write(self, message: str) -> None:
        """A line of its own that does not break the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            self._print(message)

    def close(self, n: float | None = None, **fields: object) -> None:
        """Show the final state once and release the display."""
        if n is not None:
            self.n = float(n)
        if fields:
            self.fields = fields
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.n = min(self.n, self.total)
            self._bar.set_postfix_str(self._fields_text(), refresh=False)
            self._bar.close()  # draws the last frame, once
            self._bar = None
        else:
            self._print(self._line("done "))
        self.enabled = False

    def discard(self) -> None:
        """Release the display without a final line: the work failed before it had any to show
        (its error is the one line the user should see)."""
        if self._bar is not None:
            self._bar.leave = False
            self._bar.close()  # clears the bar from the terminal
            self._bar = None
        self.enabled = False

    def _fields_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.fields.items())

    def _line(self, state: str) -> str:
        percent = 100.0 * self.n / self.total if self.total > 0 else 100.0
        timing = f"{format_seconds(self.elapsed())} elapsed"
        if state != "done ":
            timing += f", eta {format_seconds(self.eta())}"
        digits = 1 if self.unit == "s" else 0
        text = (
            f"{self.label}: {state}{self.n:.{digits}f}/{self.total:g} {self.unit} "
            f"({percent:.0f}%), {timing}"
        )
        if self.fields:
            text += "; " + self._fields_text()
        return text

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
