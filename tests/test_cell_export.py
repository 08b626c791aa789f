"""predict.py --export / --exported, and the "Exported models" commands of the READMEs as written.

A run folder holds an untrained small model trained "on 64 crops" with pinned
heads (`model_helpers.confident_heads`: every ROI is a detection); exporting
it and predicting from the export must give the same submission as
predicting from the checkpoint.
"""

import csv
import os
import re
import shlex

import keras
import numpy as np
import pytest
import skimage.io
from helpers import load_sample_script
from model_helpers import confident_heads, make_config


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = keras.backend.backend()
# The export from JAX is checked in tests/inference/test_export.py; the script's plumbing
# is the same on every backend, so it runs on TensorFlow only (a minute less of JAX tests).
needs_saved_model = pytest.mark.skipif(
    BACKEND != "tensorflow", reason=f"predict.py's export path runs on TensorFlow here; the "
    f"export from {BACKEND} is tested (or refused) in tests/inference/test_export.py")


@pytest.fixture(scope="module")
def predict():
    return load_sample_script("predict")


def _run(model_dir):
    """A run folder: config.json and a checkpoint of a model trained on 64x64 crops."""
    import mrcnn.model as modellib
    from mrcnn.config import save_config

    config = make_config(NAME="cell", IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="crop",
                         IMAGE_MIN_DIM=64, CLASS_NAMES=["BG", "astro", "cort", "shsy5y"])
    run = model_dir / "cell20240101T0000"
    run.mkdir(parents=True)
    infer = make_config(NAME="cell", IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="none",
                        IMAGE_SHAPE=[64, 64, 3])
    model = modellib.MaskRCNN("inference", infer, str(model_dir))
    confident_heads(model, class_id=3, score=0.55, mask_probability=0.88)
    model.keras_model.save_weights(str(run / "mask_rcnn_cell_0001.h5"))
    save_config(config, str(run / "config.json"))
    return run / "mask_rcnn_cell_0001.h5"


def _images(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:100, 0:120]
    for i in range(2):
        image = 120 + 80 * np.sin(yy / (5.0 + i)) * np.cos(xx / 7.0) + rng.normal(0, 8, (100, 120))
        skimage.io.imsave(str(folder / f"img{i}.png"), np.clip(image, 0, 255).astype(np.uint8),
                          check_contrast=False)
    return folder


def _rows(path):
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["id", "predicted"]
    return rows[1:]


@needs_saved_model
def test_export_then_exported_writes_the_checkpoints_submission(predict, tmp_path, capsys):
    weights = _run(tmp_path / "logs")
    images = _images(tmp_path / "test")
    common = [str(images), "--min-score", "0.0", "--min-area", "1"]
    predict.main(common + ["--weights", str(weights), "--out", str(tmp_path / "ckpt.csv")])
    out = tmp_path / "exported"
    assert predict.main(common + ["--weights", str(weights), "--export", str(out)]) == str(out)
    assert "exported " + str(out) + " (tf_saved_model, input [128, 128, 3])" in \
        capsys.readouterr().out
    assert os.path.exists(out / "saved_model.pb") and not (tmp_path / "submission.csv").exists()
    os.remove(weights.parent / "config.json")                 # the export needs none
    predict.main(common + ["--exported", str(out), "--out", str(tmp_path / "exp.csv")])
    expected = _rows(tmp_path / "ckpt.csv")
    assert {r[0] for r in expected} == {"img0", "img1"} and all(r[1] for r in expected)
    assert _rows(tmp_path / "exp.csv") == expected
    # TTA runs on the export too (flips keep the input size)
    predict.main(common + ["--exported", str(out), "--tta", "--out", str(tmp_path / "tta.csv")])
    assert {r[0] for r in _rows(tmp_path / "tta.csv")} == {"img0", "img1"}


def test_export_flags_are_checked_before_anything_is_read(predict, tmp_path):
    images = str(tmp_path / "missing")
    for argv, message in (
            (["--exported", "e", "--weights", "last", "--tile"],
             "--exported e runs the export as it was written: --weights, --tile cannot change "
             "it"),
            (["--exported", "e", "--export", "f"], "--export writes an exported model and "
                                                   "--exported reads one: give one"),
            (["--export", "f", "--weights", "a.h5", "--weights", "b.h5"],
             "--export writes one model: give one --weights")):
        with pytest.raises(ValueError, match=re.escape(message)):
            predict.main([images] + argv)
    with pytest.raises(SystemExit):
        predict.build_parser().parse_args([images, "--export", "f", "--export-format", "pb"])


def _block(doc, marker):
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    assert f"<!-- {marker} -->" in text, f"{doc} lost <!-- {marker} -->"
    return re.search(r"```\w+\n(.*?)```", text.split(f"<!-- {marker} -->", 1)[1], re.S).group(1)


@needs_saved_model
def test_documented_export_commands_run_as_written(predict, tmp_path, monkeypatch):
    """The commands of README.md and samples/cell/README.md (the same two lines)."""
    block = _block("samples/cell/README.md", "cell-export")
    assert _block("README.md", "readme-export-commands") == block
    monkeypatch.chdir(tmp_path)
    _run(tmp_path / "logs")                                 # what --weights last finds
    images = _images(tmp_path / "data" / "test")
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    lines = [shlex.split(os.path.expandvars(line)) for line in block.splitlines() if line.strip()]
    assert [words[:2] for words in lines] == [["python", "samples/cell/predict.py"]] * 2
    for words in lines:
        predict.main(words[2:])
    assert os.path.exists("exported/cell/saved_model.pb")
    ids = {r[0] for r in _rows("submission.csv")}
    assert ids == {os.path.splitext(f)[0] for f in os.listdir(images)}


@needs_saved_model
def test_readme_export_python_block_runs_as_written(tmp_path, monkeypatch):
    import mrcnn.model as modellib

    monkeypatch.chdir(tmp_path)
    model = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), "logs")
    confident_heads(model)
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    namespace = {"model": model, "image": image}
    exec(compile(_block("README.md", "readme-export"), "README.md", "exec"), namespace)
    r = namespace["r"]
    assert r["masks"].shape == (50, 60, len(r["class_ids"])) and len(r["class_ids"]) > 0
    out = namespace["out"]
    assert tuple(out["boxes"].shape) == (1, 8, 4) and tuple(out["masks"].shape) == (1, 8, 28, 28)
