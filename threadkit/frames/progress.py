"""Progress reporting for bulk writes: a callback, or a ``tqdm.auto`` bar.

A bar is tqdm's: in a Jupyter kernel ``tqdm.auto`` draws the notebook widget
(rate, elapsed time and ETA), elsewhere the familiar text bar on stderr. tqdm is
imported only when a bar is drawn.

Examples
--------
>>> seen = []
>>> report = reporter(lambda done, total: seen.append((done, total)), 10)
>>> report(4); report(10); report.close()
>>> seen
[(4, 10), (10, 10)]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from threadkit.errors import InvalidInput

__all__ = ["AUTO_ROWS", "Progress", "check_progress", "reporter"]

AUTO_ROWS = 20_000
"""With ``progress=None``, frames of at least this many rows get a bar (when one can show)."""

Progress = Callable[[int, int], None] | bool | None
"""``progress=`` argument: a ``callback(done, total)``, True (a bar), False (none) or None
(a bar for large frames, when one can show)."""


class _Reporter:
    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, done: int) -> None:
        """Report ``done`` rows of ``total``."""

    def close(self) -> None:
        """Finish the display."""


class _Callback(_Reporter):
    def __init__(self, total: int, callback: Callable[[int, int], None]) -> None:
        super().__init__(total)
        self.callback = callback

    def __call__(self, done: int) -> None:
        self.callback(done, self.total)


class _Bar(_Reporter):
    """A ``tqdm.auto`` bar counting rows."""

    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm

        super().__init__(total)
        self.bar: Any = tqdm(total=total, desc="writing", unit="rows", unit_scale=True)

    def __call__(self, done: int) -> None:
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _bar(total: int, forced: bool) -> _Reporter:
    """A tqdm bar when one can show (a kernel or a terminal), or always when ``forced``."""
    stream = sys.stderr
    if stream is None:
        return _Reporter(total)
    if forced or _in_kernel() or stream.isatty():
        return _Bar(total)
    return _Reporter(total)


def check_progress(progress: object) -> None:
    """Raise InvalidInput unless ``progress`` is a callable, a bool or None."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise InvalidInput(
            f"progress must be a callback(done, total), True, False or None, not {progress!r}"
        )


def reporter(progress: Progress, total: int) -> _Reporter:
    """A reporter for ``total`` rows: call it with the rows done, then ``close()``.

    Raises
    ------
    InvalidInput
        When ``progress`` is not a callable, a bool or None.
    """
    check_progress(progress)
    if progress is None:
        return _bar(total, forced=False) if total >= AUTO_ROWS else _Reporter(total)
    if progress is True:
        return _bar(total, forced=True)
    if progress is False:
        return _Reporter(total)
    assert callable(progress)
    return _Callback(total, progress)
