"""The samples and notebooks find the library of their own checkout, installed or not.

Matterport's users clone the repository and run ``python samples/...`` or open
a notebook from ``notebooks/`` without ``pip install``; Matterport's samples
and notebooks put the repository root on ``sys.path`` themselves. Here a
Python without the installed package is made by ``python -S`` (``site`` not
imported, so the editable install's ``.pth`` finder never runs) with the
site-packages folders on ``PYTHONPATH`` (NumPy, Keras, TensorFlow stay
importable): ``import mrcnn`` fails there, and each script must still start.
"""

import os
import site
import subprocess
import sys

import nbformat
import pytest

# No backend op: scripts started with --help, notebook import cells.
pytestmark = pytest.mark.backend_independent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("samples/cell/train.py", "samples/cell/predict.py", "samples/cell/pseudo_label.py",
           "samples/nucleus/train.py", "samples/shapes/train.py", "samples/coco/coco.py",
           "samples/balloon/balloon.py", "samples/nucleus/nucleus.py")
NOTEBOOKS = ("train_cell.ipynb", "inference_cell.ipynb", "inspect_data.ipynb",
             "inspect_model.ipynb")


def run_uninstalled(args, cwd):
    """Run `python -S args` where only the site-packages (no .pth finders) are importable."""
    folders = [p for p in site.getsitepackages() + [site.getusersitepackages()]
               if os.path.isdir(p)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(folders), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)


def test_the_package_is_not_importable_without_site(tmp_path):
    # The control: without it the tests below would pass through the installed package.
    result = run_uninstalled(["-c", "import mrcnn"], tmp_path)
    assert result.returncode != 0
    assert "No module named 'mrcnn'" in result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_sample_script_runs_from_a_checkout_without_install(script, tmp_path):
    # Started from elsewhere (cwd is not the checkout), by path, as `python3 samples/...`.
    result = run_uninstalled([os.path.join(ROOT, script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: "), result.stdout[:200]


def import_cells(name):
    """The notebook's parameter cell and the cell that imports the library, as one script."""
    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    imports = next(s for s in code if "import mrcnn" in s or "from mrcnn" in s)
    python = [line for line in (code[0] + "\n" + imports).splitlines()
              if not line.startswith("%")]            # IPython magics (%matplotlib inline)
    return "\n".join(python + ["import mrcnn", "print('mrcnn from', mrcnn.__file__)"])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_imports_the_checkout_it_sits_in(name, tmp_path):
    source = import_cells(name)
    # Run from notebooks/ (Jupyter's working directory for a notebook there): the checkout's mrcnn.
    inside = run_uninstalled(["-c", source], os.path.join(ROOT, "notebooks"))
    assert inside.returncode == 0, inside.stderr[-2000:]
    assert f"mrcnn from {os.path.join(ROOT, 'mrcnn', '__init__.py')}" in inside.stdout
    if name != NOTEBOOKS[0]:
        return      # the same lines in every notebook: the other directory is checked once
    # Run anywhere else (a Kaggle kernel's /kaggle/working): nothing is added to sys.path, so
    # without an installed package the import fails as Python's own error.
    outside = run_uninstalled(["-c", source], tmp_path)
    assert outside.returncode != 0
    assert "No module named 'mrcnn'" in outside.stderr
