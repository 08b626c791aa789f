"""samples/cell: train on the embedded synthetic data, predict, validate the submission."""

import csv
import importlib.util
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    path = os.path.join(ROOT, "samples", "cell", name + ".py")
    spec = importlib.util.spec_from_file_location("cell_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_train_then_predict_writes_valid_submission(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_CACHE_DIR", str(tmp_path / "cache"))
    train = load_script("train")
    model_dir = tmp_path / "logs"
    scores = train.main(["--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1",
                         "--synthetic-images", "6", "--folds", "3", "--model-dir", str(model_dir)])
    assert 0.0 <= scores["map_iou"] <= 1.0
    run = [d for d in os.listdir(model_dir)][0]
    files = os.listdir(model_dir / run)
    assert "mask_rcnn_cell_0001.h5" in files and "config.json" in files

    images = tmp_path / "test"
    shutil.copytree(tmp_path / "cache" / "synthetic_sartorius" / "train", images)
    predict = load_script("predict")
    out = tmp_path / "submission.csv"
    predict.main([str(images), "--model-dir", str(model_dir), "--out", str(out),
                  "--limit", "2", "--min-score", "0.0", "--overlays", str(tmp_path / "ovl")])
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["id", "predicted"]
    ids = sorted(os.path.splitext(f)[0] for f in os.listdir(images))[:2]
    assert sorted({r[0] for r in rows[1:]}) == ids  # every image has at least one row
    assert len(os.listdir(tmp_path / "ovl")) == 2

    # resume: --weights last continues after epoch 1
    scores = train.main(["--epochs", "2", "--steps-per-epoch", "1", "--validation-steps", "1",
                         "--synthetic-images", "6", "--folds", "3", "--model-dir", str(model_dir),
                         "--weights", "last"])
    runs = sorted(os.listdir(model_dir))
    assert "mask_rcnn_cell_0002.h5" in os.listdir(model_dir / runs[0])


@pytest.mark.slow
def test_nucleus_sample_runs_on_embedded_dsb_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_CACHE_DIR", str(tmp_path / "cache"))
    path = os.path.join(ROOT, "samples", "nucleus", "train.py")
    spec = importlib.util.spec_from_file_location("nucleus_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scores = module.main(["--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1",
                          "--synthetic-images", "4", "--folds", "2",
                          "--model-dir", str(tmp_path / "logs")])
    assert 0.0 <= scores["map_iou"] <= 1.0 and scores["n_images"] == 2
    root = tmp_path / "cache" / "synthetic_nuclei"
    ids = sorted(d for d in os.listdir(root) if not d.startswith("."))
    assert len(ids) == 4
    assert os.listdir(root / ids[0] / "masks")


def test_anchor_scales_flag():
    train = load_script("train")
    assert train.parse_anchor_scales("16:23,32:45,64:91,128:181,256:362") == (
        (16, 23), (32, 45), (64, 91), (128, 181), (256, 362))
    assert train.parse_anchor_scales("8,16,32,64,128") == (8, 16, 32, 64, 128)
    assert train.parse_anchor_scales(None) == train.CellConfig.RPN_ANCHOR_SCALES
    with pytest.raises(SystemExit, match="16:x"):
        train.parse_anchor_scales("16:x,32")
