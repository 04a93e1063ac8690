"""What the live widgets share: a background thread, throttled re-rendering, clean stopping.

A live widget's background threads live as long as both the displayed widget and
its source: they stop when the ``ipywidgets`` widget is closed (by :meth:`LiveWidget.close`
or by anyone calling ``widget.close()``) and when the source goes away (the database
or the peer is closed). Stopping never removes the widget: its views keep showing
the last state, with a line saying that live updates stopped and why. Only
:meth:`LiveWidget.close` removes the views, so a notebook's last cell closes the
peer, not its widgets, and Run All ends with every widget still on screen.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from threadkit.errors import RepoClosed

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
    stopped : str | None
        Why live updates stopped (None while they run).
    """

    def __init__(self, throttle: float = 0.25, poll: float | None = None) -> None:
        import ipywidgets

        self.widget = ipywidgets.HTML(value="")
        self.throttle = throttle
        self.renders = 0
        self.error: str | None = None
        self.stopped: str | None = None
        self._poll = poll
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cleanups: list[Callable[[], None]] = []
        self._stop_lock = threading.Lock()
        self.widget.observe(self._comm_changed, names="comm")

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

    def _source_ended(self, reason: str) -> None:
        """The source is gone (its feed ended): show what arrived last, then stop."""
        if not self._stop.is_set():
            self._refresh()
        self.stop(reason)

    def _comm_changed(self, change: dict[str, Any]) -> None:
        if change["new"] is None:  # the widget was closed: nothing left to update
            self.stop("the widget was closed")

    def _refresh(self) -> None:
        if self._stop.is_set():
            return
        try:
            self.widget.value = self.render()
            self.error = None
        except RepoClosed:  # the source went away: keep showing the last state
            self.stop("the peer was closed")
            return
        except Exception as exc:  # a bad query must not kill the thread
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

    def stop(self, reason: str = "stopped") -> None:
        """Stop live updates and release the sources; the widget keeps its last state.

        Called by itself when the source goes away (the database or peer is closed)
        or the widget is closed. Safe to call more than once: the first reason stays.

        Parameters
        ----------
        reason : str
            Why, shown under the last state (``"live updates stopped: <reason>"``).
        """
        with self._stop_lock:
            if self.stopped is not None:
                return
            self.stopped = reason
        self._stop.set()
        self._dirty.set()
        for cleanup in self._cleanups:
            try:
                cleanup()
            except Exception:  # stopping must always finish
                log.debug("widget cleanup failed", exc_info=True)
        current = threading.current_thread()
        if self._thread is not None and self._thread is not current:
            self._thread.join(timeout=2)
        if self.widget.comm is not None:
            self.widget.value = (
                f"{self.widget.value}<div style='color:#777;font-size:smaller'>"
                f"<i>live updates stopped: {escape(reason)}</i></div>"
            )

    def close(self) -> None:
        """Stop the background threads, release sources, and close the widget.

        Closing removes the widget's views from the notebook; to keep them showing
        the last state, call :meth:`stop` or just close the peer.
        """
        self.stop("the widget was closed")
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
