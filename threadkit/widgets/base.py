"""What the live widgets share: a background thread, throttled re-rendering, clean closing."""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LiveWidget", "escape"]

log = logging.getLogger("threadkit.widgets")


def escape(value: object, limit: int = 120) -> str:
    """HTML-escaped text of a value, shortened to ``limit`` characters."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


class LiveWidget:
    """An ``ipywidgets.HTML`` re-rendered from a background thread.

    Subclasses implement :meth:`render` (returns HTML) and may feed :meth:`wake`
    from their sources; re-renders happen at most every ``throttle`` seconds.

    Attributes
    ----------
    widget : ipywidgets.HTML
        The displayed widget (``_repr_mimebundle_`` delegates to it).
    renders : int
        How many times the widget was re-rendered (tests watch it).
    """

    def __init__(self, throttle: float = 0.25, poll: float | None = None) -> None:
        import ipywidgets

        self.widget = ipywidgets.HTML(value="")
        self.throttle = throttle
        self.renders = 0
        self.error: str | None = None
        self._poll = poll
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cleanups: list[Callable[[], None]] = []

    def start(self) -> None:
        """Render once now, then keep re-rendering in a background thread."""
        self._refresh()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ask for a re-render (called when a source changed)."""
        self._dirty.set()

    def render(self) -> str:  # pragma: no cover - abstract
        """The widget's HTML."""
        raise NotImplementedError

    def _refresh(self) -> None:
        try:
            self.widget.value = self.render()
            self.error = None
        except Exception as exc:  # a closed peer or a bad query must not kill the thread
            self.error = f"{type(exc).__name__}: {exc}"
            self.widget.value = f"<pre>{escape(self.error, 500)}</pre>"
        self.renders += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._dirty.wait(timeout=self._poll if self._poll else 0.5)
            if self._stop.is_set():
                return
            if woken or self._poll:
                self._dirty.clear()
                self._refresh()
                time.sleep(self.throttle)

    def close(self) -> None:
        """Stop the background thread, release sources, close the widget."""
        self._stop.set()
        self._dirty.set()
        for cleanup in self._cleanups:
            try:
                cleanup()
            except Exception:  # closing must always finish
                log.debug("widget cleanup failed", exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self.widget.close()

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __enter__(self) -> LiveWidget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
