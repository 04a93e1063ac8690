"""What the live widgets share: a background thread, throttled re-rendering, clean stopping.

A live widget's background threads live as long as both the displayed widget and
its source: they stop when the ``ipywidgets`` widget is closed (by :meth:`LiveWidget.close`
or by anyone calling ``widget.close()``) and when the source goes away (the database
or the peer is closed). Stopping never removes the widget: its views keep showing
the last state, with a line saying that live updates stopped and why. Only
:meth:`LiveWidget.close` removes the views, so a notebook's last cell closes the
peer, not its widgets, and Run All ends with every widget still on screen.

Every displayed widget carries a static copy of its HTML (``text/html`` beside the
widget view in its mime bundle). When live updates stop, each of its outputs is
replaced by that static HTML alone, as it last looked: a notebook saved after
``peer.close()`` shows the last state when reopened, on GitHub and in nbviewer, where
a widget view would say "model not found".
"""

from __future__ import annotations

import html
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from threadkit.errors import RepoClosed

__all__ = ["LiveWidget", "escape", "frame_html", "member", "panel"]

log = logging.getLogger("threadkit.widgets")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# Inside a widget the page's output styles do not reach the HTML, so tables get the
# JupyterLab class that styles DataFrame outputs (and these rules where it is absent).
_STYLE = (
    "<style>"
    ".tk-live{font-size:12px;line-height:1.4}"
    ".tk-live .tk-scroll{max-height:22em;overflow:auto;border:1px solid "
    "var(--jp-border-color2,#e0e0e0);margin-top:4px}"
    ".tk-live table{border-collapse:collapse;border:none;width:auto}"
    ".tk-live th,.tk-live td{padding:2px 8px;text-align:left;vertical-align:top;"
    "white-space:nowrap}"
    ".tk-live td.tk-num{text-align:right}"
    ".tk-live td.tk-doc{white-space:normal;min-width:16em}"
    ".tk-live thead th{position:sticky;top:0;background:var(--jp-layout-color0,#fff);"
    "border-bottom:1px solid var(--jp-border-color1,#bdbdbd)}"
    ".tk-live tbody tr:nth-child(odd){background:var(--jp-layout-color1,#f5f5f5)}"
    ".tk-live .tk-stopped{color:#777;font-style:italic;margin-top:2px}"
    "</style>"
)


def panel(title: str, body: str) -> str:
    """A widget's HTML: a bold title line over ``body`` in a scroll box, styled."""
    return (
        f"{_STYLE}<div class='tk-live jp-RenderedHTMLCommon'><div>{title}</div>"
        f"<div class='tk-scroll'>{body}</div></div>"
    )


def frame_html(frame: Any) -> str:
    """A DataFrame as its notebook repr shows it (``_repr_html_``), whatever the display options.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to show.
    """
    import pandas as pd

    with pd.option_context("display.max_rows", len(frame) + 1, "display.max_columns", 20):
        shown = frame._repr_html_()
    return str(shown if shown is not None else frame.to_html(border=0))


def member(log_id: str | None, own: str | None) -> str:
    """Who wrote, for people: "you" for this peer's own log, else a short log id."""
    if log_id is None:
        return "?"
    if log_id == own:
        return "you"
    return f"{log_id[:6]}…{log_id[-4:]}" if len(log_id) > 12 else log_id


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
        self._displays: list[Any] = []
        self._closing = False
        self._stop_done = threading.Event()
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
        if self.widget.comm is not None and not self._closing:
            self.widget.value = (
                f"{self.widget.value}<div class='tk-live tk-stopped' "
                f"style='color:#777;font-style:italic'>live updates stopped: {escape(reason)}</div>"
            )
            self._publish_static()
        self._stop_done.set()

    def _publish_static(self) -> None:
        """Replace each displayed output of this widget by its static HTML."""
        for handle in self._displays:
            try:
                handle.update(self._static_bundle(), raw=True)
            except Exception:  # outside a kernel there is nothing to update
                log.debug("could not replace a widget output", exc_info=True)

    def _source_gone(self) -> bool:
        """True once the source is closed (the background threads are about to stop)."""
        return False

    def close(self) -> None:
        """Stop the background threads, release sources, and close the widget.

        Closing removes the widget's views from the notebook; to keep them showing
        the last state, call :meth:`stop` or just close the peer.
        """
        self._closing = True
        self.stop("the widget was closed")
        self.widget.close()

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _static_bundle(self) -> dict[str, str]:
        return {"text/html": self.widget.value, "text/plain": f"<{type(self).__name__}>"}

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view and, beside it, the static HTML of the current state."""
        if self.stopped is not None:
            return self._static_bundle()
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.widget.value
        return bundle

    def _ipython_display_(self) -> None:
        """Display with a display id, so the output becomes static HTML when updates stop."""
        from IPython.display import display

        handle = display(  # type: ignore[no-untyped-call]
            self._repr_mimebundle_(), raw=True, display_id=True
        )
        if handle is not None and self.stopped is None:
            self._displays.append(handle)
            _watch(self)

    def __enter__(self) -> LiveWidget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Displayed widgets whose outputs are not static yet. A kernel attributes output sent
# from a background thread to the cell that started it, and a notebook runner that is
# not a browser (nbclient, nbconvert, papermill) drops what comes for a finished cell:
# after each cell, the kernel's own thread turns stopped widgets' outputs static, with
# the executing cell as parent, so such runners record the last state too.
_displayed: weakref.WeakSet[LiveWidget] = weakref.WeakSet()
_hooked: list[Any] = []


def _watch(widget: LiveWidget) -> None:
    _displayed.add(widget)
    if _hooked:
        return
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return
    if shell is not None:
        shell.events.register("post_execute", _after_cell)
        _hooked.append(shell)


def _after_cell() -> None:
    """After a cell: widgets whose source closed during it stop, and their outputs go static."""
    for widget in list(_displayed):
        if widget.stopped is None and widget._source_gone():
            widget.wake()
            for thread in (getattr(widget, "_reader", None), widget._thread):
                if (
                    isinstance(thread, threading.Thread)
                    and thread is not threading.current_thread()
                ):
                    thread.join(timeout=2)
        if widget.stopped is not None:
            widget._stop_done.wait(timeout=2)  # its last state, with the line saying why
            _displayed.discard(widget)
            if not widget._closing and widget.widget.comm is not None:
                widget._publish_static()
