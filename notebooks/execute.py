"""Run the tutorial notebooks and save them with their outputs, as they are committed.

Usage, from the repository root (with threadkit importable, e.g. installed with ``pip -e``)::

    python notebooks/execute.py                 # every notebook in notebooks/
    python notebooks/execute.py 02-two-peers    # some of them

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient), in a temporary
working directory (the notebooks write files beside themselves), and is written back
with its outputs and the state of its widgets in its metadata
(``application/vnd.jupyter.widget-state+json``, as JupyterLab's "Save Widget State
Automatically" stores it), so GitHub, nbviewer, the documentation site and a freshly
opened JupyterLab show every output and widget as it looked after Run All.

Nothing that depends on the run's machine is kept besides the outputs themselves: no
cell timings, no kernel start time. ``tests/notebooks/test_committed.py`` checks that the
committed notebooks are executed this way and clean (no errors, no stderr, no paths of
the machine, no keys); run this script after changing a notebook or what it shows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, timeout: float = 300) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` and return it with its outputs and widget state.

    Parameters
    ----------
    path : Path
        The ``.ipynb`` file.
    timeout : float
        Seconds one cell may take.
    """
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    # the kernel's subprocesses (`sys.executable -m threadkit ...`) use this interpreter
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    with tempfile.TemporaryDirectory(prefix="tk-notebook-") as workdir:
        client = NotebookClient(
            notebook,
            timeout=int(timeout),
            kernel_name="python3",
            resources={"metadata": {"path": workdir}},
            store_widget_state=True,
            record_timing=False,
            allow_errors=False,
        )
        client.execute()
    return notebook


def main(argv: list[str] | None = None) -> int:
    """Execute the named notebooks (default: all in this folder) and write them back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names, with or without .ipynb")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.names:
        paths = [HERE / (n if n.endswith(".ipynb") else f"{n}.ipynb") for n in args.names]
    else:
        paths = sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        notebook = execute(path, timeout=args.timeout)
        nbformat.validate(notebook)
        nbformat.write(notebook, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
