"""The figure :func:`threadkit.graph.plot_dag` returns: a matplotlib figure that shows itself.

A figure made without pyplot (so that drawing never opens a window or touches
the caller's pyplot state) displays in Jupyter only once ``%matplotlib inline``
has registered matplotlib's formatters; otherwise a cell shows the text
``<Figure size 700x300 with 1 Axes>``. :class:`DagFigure` carries its own
``_repr_png_``, so it displays as a picture in any kernel and any frontend that
reads rich output, with or without pyplot; in a terminal its repr says how to
save it (:meth:`DagFigure.save`).

This module imports matplotlib, so it is imported only when a figure is drawn.

Examples
--------
>>> fig = DagFigure(figsize=(2, 1))
>>> _ = fig.add_subplot().plot([0, 1], [0, 1])
>>> fig._repr_png_()[:4]
b'\\x89PNG'
>>> repr(fig)
"<DagFigure 200x100 px: fig.save('dag.png') writes it to a file>"
"""

from __future__ import annotations

import io
import os

from matplotlib.figure import Figure

__all__ = ["DagFigure"]


class DagFigure(Figure):
    """A matplotlib ``Figure`` with a PNG rich repr and a one-call :meth:`save`.

    Everything a ``Figure`` does works unchanged (``fig.axes``, ``fig.savefig``).
    """

    def _repr_png_(self) -> bytes:
        """The figure as PNG bytes (what Jupyter shows for the cell's value)."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def save(self, path: str | os.PathLike[str], dpi: float = 110) -> str:
        """Write the figure to ``path`` (the format from its suffix: .png, .svg, .pdf…).

        Parameters
        ----------
        path : str or PathLike
            The file to write.
        dpi : float
            Resolution of raster formats.

        Returns
        -------
        str
            The path written.
        """
        self.savefig(path, dpi=dpi, bbox_inches="tight")
        return os.fspath(path)

    def __repr__(self) -> str:
        width, height = (round(float(v)) for v in self.get_size_inches() * self.dpi)
        return f"<DagFigure {width}x{height} px: fig.save('dag.png') writes it to a file>"
