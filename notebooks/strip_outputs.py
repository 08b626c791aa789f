"""Remove outputs and execution counts from notebooks before committing them.

The notebooks are committed without outputs (CI executes them; see
``tests/test_notebooks.py``). After running one in Jupyter::

    python notebooks/strip_outputs.py                  # every notebook in notebooks/
    python notebooks/strip_outputs.py path/to/a.ipynb  # given notebooks
    python notebooks/strip_outputs.py --check          # exit 1 if any has outputs

Code cells lose their outputs, execution counts and run metadata (the
``execution`` timings nbclient and JupyterLab record, ``collapsed``,
``scrolled``); the notebook loses widget state. Sources and other metadata are
kept, so a stripped notebook differs from its executed copy only in what was
produced by running it.
"""

import argparse
import glob
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
RUN_NOTEBOOK_METADATA = ("widgets",)


def run_residue(nb):
    """What running left in a notebook.

    Args:
        nb: a notebook (``nbformat.NotebookNode``, version 4).

    Returns:
        list of strings, one per cell or field holding outputs, an execution
        count or run metadata (empty when the notebook is stripped), e.g.
        ``["cell 3: 2 outputs", "cell 3: execution_count 7"]``.
    """
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell.outputs)} outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution_count {cell.execution_count}")
        for key in RUN_CELL_METADATA:
            if key in cell.get("metadata", {}):
                found.append(f"cell {index}: metadata {key!r}")
    for key in RUN_NOTEBOOK_METADATA:
        if key in nb.get("metadata", {}):
            found.append(f"notebook metadata {key!r}")
    return found


def strip_notebook(nb):
    """Remove outputs, execution counts and run metadata in place.

    Args:
        nb: a notebook (``nbformat.NotebookNode``, version 4).

    Returns:
        bool, True when something was removed.
    """
    changed = bool(run_residue(nb))
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        for key in RUN_CELL_METADATA:
            cell.metadata.pop(key, None)
    for key in RUN_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*",
                        help="notebooks to strip (default: every .ipynb in notebooks/)")
    parser.add_argument("--check", action="store_true",
                        help="only report notebooks that are not stripped; exit 1 if any")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(glob.glob(os.path.join(HERE, "*.ipynb")))
    if not paths:
        raise FileNotFoundError(f"no notebooks given and none in {HERE}")
    dirty = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"notebook not found: {path}")
        nb = nbformat.read(path, as_version=4)
        residue = run_residue(nb)
        if not residue:
            continue
        dirty.append(path)
        if args.check:
            print(f"{path}: not stripped ({'; '.join(residue[:3])}"
                  f"{' ...' if len(residue) > 3 else ''})")
        else:
            strip_notebook(nb)
            nbformat.write(nb, path)
            print(f"stripped {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
