"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel (nbclient).

Besides running without errors, the outputs are what a person sees after Run All:
every cell that draws the record DAG shows a picture (not ``<Figure …>`` text), and
every widget displayed is still alive in the kernel at the end (a closed widget's
views vanish from the page).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert "await " not in cell.source, f"{path.name}: a cell uses await"
    env_path = str(Path(sys.executable).parent)
    os.environ["PATH"] = env_path + os.pathsep + os.environ.get("PATH", "")
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # one cell more, run after the notebook's own: which widget models are still open
    notebook.cells.append(nbformat.v4.new_code_cell(_ALIVE))
    client.execute()
    alive_cell = notebook.cells.pop()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
    alive = set(json.loads(_stream_text(alive_cell).strip().splitlines()[-1]))
    committed = nbformat.read(path, as_version=4)
    assert _shapes(notebook) == _shapes(committed), (
        f"{path.name}: the committed outputs are not what the notebook shows now "
        "(python notebooks/execute.py regenerates them)"
    )
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown = [o.get("data", {}) for o in cell.get("outputs", [])]
        if "plot_dag(" in cell.source:
            assert any("image/png" in data for data in shown), (
                f"{path.name}: the DAG cell shows no picture: {shown}"
            )
        if "tk.widgets." in cell.source:
            # the notebook ends with peer.close(): the widget's output is now its static
            # HTML, which a saved or exported notebook, GitHub and nbviewer show
            assert any("live updates stopped" in d.get("text/html", "") for d in shown), (
                f"{path.name}: {cell.source[:60]!r} did not leave its last state as HTML: {shown}"
            )
        for data in shown:
            view = data.get("application/vnd.jupyter.widget-view+json")
            if view is not None:
                assert view["model_id"] in alive, (
                    f"{path.name}: a widget displayed by {cell.source[:60]!r} was closed, "
                    "so its view is gone after Run All"
                )


_ALIVE = (
    "import json as _json\n"
    "from ipywidgets.widgets.widget import _instances as _widgets\n"
    "print(_json.dumps(sorted(_widgets)))"
)


def _stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


def _shapes(notebook: nbformat.NotebookNode) -> list[list[tuple[str, ...]]]:
    """What kind of output each code cell shows: (output type or stream name, mime types).

    Values (ids, times) change with every run; the kinds do not, so a committed notebook
    whose outputs no longer match its code (a cell now draws, prints or fails) is caught.
    """
    shapes = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kinds: list[tuple[str, ...]] = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                kind: tuple[str, ...] = ("stream", output.get("name", ""))
            else:
                data = sorted(output.get("data", {}))
                kind = (output.get("output_type", ""), *data)
            if not kinds or kinds[-1] != kind or kind[0] != "stream":
                kinds.append(kind)
        shapes.append(kinds)
    return shapes
