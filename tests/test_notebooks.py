"""notebooks/: committed without outputs, and each one runs end to end (DEBUG sizes).

The slow tests execute every notebook with nbclient in a fresh working
directory, as a user would run it, with ``MRCNN_NOTEBOOK_DEBUG=1`` (tiny data,
one or two training steps) on the TensorFlow backend; any cell error fails the
test (``nbclient.exceptions.CellExecutionError``). Then they check what the
notebook produced: checkpoints, ``submission.csv``, figures.
"""

import ast
import base64
import csv
import glob
import importlib.util
import os
import re

import nbformat
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = ("train_cell.ipynb", "inference_cell.ipynb", "inspect_data.ipynb",
             "inspect_model.ipynb")
CELL_TIMEOUT_S = 600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read(name):
    return nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def load_strip_script():
    path = os.path.join(NOTEBOOK_DIR, "strip_outputs.py")
    spec = importlib.util.spec_from_file_location("notebooks_strip_outputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ fast checks
def test_every_notebook_is_listed():
    # A notebook added to notebooks/ must be added to NOTEBOOKS, so that CI runs it.
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")))
    assert found == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_stripped_and_valid(name):
    nb = read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 5
    assert [c.outputs for c in code] == [[]] * len(code)
    assert [c.execution_count for c in code] == [None] * len(code)
    assert not any("execution" in c.metadata for c in code)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_sets_debug_from_the_environment(name, monkeypatch):
    source = first_code_cell(read(name)).source
    tree = ast.parse(source)   # plain Python: no magics in the parameter cell
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert "DEBUG" in assigned
    params = {}
    for value in ("1", "0"):
        monkeypatch.setenv("MRCNN_NOTEBOOK_DEBUG", value)
        namespace = {}
        exec(compile(tree, name, "exec"), namespace)
        params[value] = {k: v for k, v in namespace.items() if k.isupper()}
    assert params["1"]["DEBUG"] is True and params["0"]["DEBUG"] is False
    # Some sizes follow DEBUG, and DEBUG makes them smaller.
    changed = [k for k in params["1"] if k != "DEBUG" and params["1"][k] != params["0"][k]]
    assert changed, f"{name}: no parameter depends on DEBUG"
    numeric = [k for k in changed if isinstance(params["1"][k], int)
               and isinstance(params["0"][k], int)]
    assert numeric and all(params["1"][k] <= params["0"][k] for k in numeric)


def test_strip_outputs_removes_what_running_leaves():
    strip = load_strip_script()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("print(1)", execution_count=3, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="1\n")],
            metadata={"execution": {"iopub.status.busy": "2024"}, "tags": ["keep"]}),
        nbformat.v4.new_code_cell("x = 2"),
    ])
    assert strip.run_residue(nb) == ["cell 1: 1 outputs", "cell 1: execution_count 3",
                                     "cell 1: metadata 'execution'"]
    assert strip.strip_notebook(nb) is True
    assert strip.run_residue(nb) == []
    cell = nb.cells[1]
    assert (cell.outputs, cell.execution_count, dict(cell.metadata)) == ([], None,
                                                                         {"tags": ["keep"]})
    assert cell.source == "print(1)"
    assert strip.strip_notebook(nb) is False


def test_strip_outputs_check_mode(tmp_path):
    strip = load_strip_script()
    clean, dirty = tmp_path / "clean.ipynb", tmp_path / "dirty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), clean)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "1", execution_count=1)]), dirty)
    assert strip.main(["--check", str(clean)]) == 0
    assert strip.main(["--check", str(clean), str(dirty)]) == 1
    assert nbformat.read(dirty, as_version=4).cells[0].execution_count == 1  # unchanged
    assert strip.main([str(dirty)]) == 0
    assert strip.main(["--check", str(dirty)]) == 0
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        strip.main([str(tmp_path / "missing.ipynb")])


# ------------------------------------------------------------ execution (slow)
@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """One MRCNN_CACHE_DIR for all notebooks: the synthetic images are written once."""
    return str(tmp_path_factory.mktemp("mrcnn_cache"))


def execute(name, cwd, cache_dir, monkeypatch):
    """Run a notebook in `cwd` with the DEBUG settings; return the executed notebook."""
    from nbclient import NotebookClient

    monkeypatch.setenv("MRCNN_NOTEBOOK_DEBUG", "1")
    monkeypatch.setenv("MRCNN_CACHE_DIR", cache_dir)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = read(name)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()   # raises CellExecutionError naming the failing cell
    return nb


def outputs_text(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")


def pngs(nb):
    return [base64.b64decode(o.data["image/png"]) for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "image/png" in o.get("data", {})]


def check_figures(nb, minimum):
    images = pngs(nb)
    assert len(images) >= minimum
    assert all(p.startswith(PNG_MAGIC) for p in images)
    # Every figure has real content: PNG width and height from the IHDR chunk.
    sizes = [(int.from_bytes(p[16:20], "big"), int.from_bytes(p[20:24], "big")) for p in images]
    assert all(100 <= w <= 2500 and 100 <= h <= 2500 for w, h in sizes), sizes


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_cache):
    """train_cell.ipynb executed once; its folder is reused by inspect_model."""
    cwd = tmp_path_factory.mktemp("train_cell")
    with pytest.MonkeyPatch.context() as monkeypatch:
        nb = execute("train_cell.ipynb", cwd, data_cache, monkeypatch)
    return cwd, nb


@pytest.mark.slow
def test_train_cell_notebook(trained):
    cwd, nb = trained
    text = outputs_text(nb)
    assert "on the tensorflow backend; DEBUG = True" in text
    runs = glob.glob(os.path.join(cwd, "logs_notebooks", "cell*"))
    assert len(runs) == 1
    files = sorted(os.listdir(runs[0]))
    assert "mask_rcnn_cell_0001.h5" in files and "config.json" in files
    # EPOCHS = 1 in DEBUG: history.csv holds exactly one epoch.
    with open(os.path.join(runs[0], "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0"]
    assert np.isfinite(float(rows[0]["loss"]))
    score = float(re.search(r"validation mAP-IoU: ([0-9.]+)", text).group(1))
    assert 0.0 <= score <= 1.0
    # samples x2, parameters, LR schedule, cache, losses, predictions x2, PR-IoU
    check_figures(nb, 9)


@pytest.mark.slow
def test_inference_cell_notebook_standalone(tmp_path, data_cache, monkeypatch):
    nb = execute("inference_cell.ipynb", tmp_path, data_cache, monkeypatch)
    # No training run in tmp_path: the DEBUG cell trained one step first.
    assert glob.glob(os.path.join(tmp_path, "logs_notebooks", "cell*", "mask_rcnn_cell_0001.h5"))
    with open(tmp_path / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "predicted"]
    test_images = sorted(os.path.basename(p)[:-4] for p in glob.glob(
        os.path.join(data_cache, "synthetic_sartorius_6", "train", "*.png")))
    assert sorted({r[0] for r in rows[1:]}) == test_images[:2]   # MAX_IMAGES = 2
    assert "decoded masks equal the post-processed masks: True" in outputs_text(nb)
    check_figures(nb, 2)


@pytest.mark.slow
def test_inspect_data_notebook(tmp_path, data_cache, monkeypatch):
    nb = execute("inspect_data.ipynb", tmp_path, data_cache, monkeypatch)
    text = outputs_text(nb)
    # Applying the RPN targets to the positive anchors gives back the cells' boxes.
    assert float(re.search(r"refined positive anchors vs their cells: IoU min ([0-9.]+)",
                           text).group(1)) > 0.99
    # 576x704 input, strides 4..64, 3 ratios: 3 * (144*176 + 72*88 + 36*44 + 18*22 + 9*11)
    assert "101,277" in text
    check_figures(nb, 10)


def check_roi_targets(text):
    # The detection targets move every positive ROI onto a cell's box (the ground-truth
    # boxes are among the ROI candidates, so there are positives even for an untrained RPN).
    positives = int(re.search(r"\d+ ROIs: (\d+) positive", text).group(1))
    iou = float(re.search(r"refined positive ROIs vs the cells' boxes: IoU min ([0-9.]+)",
                          text).group(1))
    assert positives > 0 and iou > 0.99


@pytest.mark.slow
def test_inspect_model_notebook_standalone(tmp_path, data_cache, monkeypatch):
    nb = execute("inspect_model.ipynb", tmp_path, data_cache, monkeypatch)
    text = outputs_text(nb)
    assert "inspecting an untrained model" in text
    check_roi_targets(text)
    check_figures(nb, 7)


@pytest.mark.slow
def test_inspect_model_notebook_after_training(trained, data_cache, monkeypatch):
    cwd, _ = trained
    nb = execute("inspect_model.ipynb", cwd, data_cache, monkeypatch)
    text = outputs_text(nb)
    assert re.search(r"checkpoint: .*mask_rcnn_cell_0001\.h5", text)
    check_roi_targets(text)
    check_figures(nb, 7)
