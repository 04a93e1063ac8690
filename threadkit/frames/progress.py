"""Progress reporting for bulk writes: a callback, an ipywidgets bar, or a text bar.

No dependency is added: the widget bar is used only when ipywidgets is installed
and the code runs in a Jupyter kernel, the text bar only on a terminal.

Examples
--------
>>> seen = []
>>> report = reporter(lambda done, total: seen.append((done, total)), 10)
>>> report(4); report(10); report.close()
>>> seen
[(4, 10), (10, 10)]
"""

from __future__ import annotations

import importlib
import sys
import time
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


class _TextBar(_Reporter):
    def __init__(self, total: int, stream: Any) -> None:
        super().__init__(total)
        self.stream = stream
        self.start = time.monotonic()

    def __call__(self, done: int) -> None:
        share = done / self.total if self.total else 1.0
        filled = int(share * 30)
        rate = done / max(time.monotonic() - self.start, 1e-9)
        self.stream.write(
            f"\rwriting [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} "
            f"{done:,}/{self.total:,} rows ({rate:,.0f}/s)"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class _WidgetBar(_Reporter):
    def __init__(self, total: int, widgets: Any) -> None:
        super().__init__(total)
        display: Any = importlib.import_module("IPython.display").display
        self.bar = widgets.IntProgress(min=0, max=max(total, 1), description="writing")
        self.label = widgets.Label(f"0/{total:,} rows")
        display(widgets.HBox([self.bar, self.label]))

    def __call__(self, done: int) -> None:
        self.bar.value = done
        self.label.value = f"{done:,}/{self.total:,} rows"

    def close(self) -> None:
        self.bar.bar_style = "success"


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _bar(total: int, forced: bool) -> _Reporter:
    if _in_kernel():
        try:
            widgets = importlib.import_module("ipywidgets")
        except ImportError:
            pass
        else:
            return _WidgetBar(total, widgets)
    stream = sys.stderr
    if forced or (stream is not None and stream.isatty()):
        return _TextBar(total, stream)
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
