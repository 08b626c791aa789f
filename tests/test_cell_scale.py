"""samples/cell: --scale / --scale-range in train.py, --scale / --tile in predict.py."""

import csv
import os
import shutil

import numpy as np
import pytest
import skimage.io

from mrcnn.data.fit import draw_image_scale
from mrcnn.data.rle import rle_decode
from mrcnn.data.sample import load_image_gt
from mrcnn.dataset import Dataset
from mrcnn.datasets.synthetic_cells import make_cell_image
from helpers import load_sample_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["BG", "astro", "cort", "shsy5y"]


load_script = load_sample_script


@pytest.fixture(scope="module")
def train():
    return load_script("train")


@pytest.fixture(scope="module")
def predict():
    return load_script("predict")


def configs(train, argv):
    return train.make_config(train.build_parser().parse_args(argv), CLASSES)


class OneCellImage(Dataset):
    """One generated 520x704 Sartorius-like image."""

    def __init__(self):
        super().__init__()
        self.add_class("cell", 1, "astro")
        image, masks = make_cell_image(np.random.default_rng(0), "cort", 520, 704)
        self.image, self.masks = np.stack([image] * 3, -1).astype(np.uint8), masks
        self.add_image("cell", image_id="a", path=None)
        self.prepare()

    def load_image(self, image_id):
        return self.image

    def load_mask(self, image_id):
        return self.masks, np.ones(self.masks.shape[-1], np.int32)


def test_train_defaults_are_unscaled(train):
    config, infer = configs(train, [])
    assert config.IMAGE_SCALE == 1.0 and config.IMAGE_SCALE_RANGE is None
    assert list(infer.IMAGE_SHAPE) == [576, 704, 3] and infer.IMAGE_SCALE == 1.0


def test_train_scale_range_draws_a_scale_per_sample(train):
    config, infer = configs(train, ["--scale", "2", "--scale-range", "1.5,2.5"])
    assert config.IMAGE_SCALE == 2.0 and tuple(config.IMAGE_SCALE_RANGE) == (1.5, 2.5)
    # evaluation holds the 520x704 images scaled x2: 1040x1408 -> 1088x1408
    assert list(infer.IMAGE_SHAPE) == [1088, 1408, 3] and infer.IMAGE_SCALE == 2.0
    ds = OneCellImage()
    scales = []
    for seed in range(3):
        image, meta, _, bbox, _ = load_image_gt(ds, config, 0, rng=seed)
        assert image.shape == (256, 256, 3)                  # the 256 crop
        assert meta[11] == pytest.approx(draw_image_scale(config, np.random.default_rng(seed)))
        scales.append(float(meta[11]))
    assert all(1.5 <= s <= 2.5 for s in scales) and len(set(scales)) == 3


def test_train_scale_in_pad_mode_grows_the_input(train):
    config, _ = configs(train, ["--scale", "2", "--image-mode", "pad"])
    assert list(config.IMAGE_SHAPE) == [1088, 1408, 3] and config.IMAGE_SCALE_RANGE is None
    image, meta, class_ids, bbox, mask = load_image_gt(OneCellImage(), config, 0)
    assert image.shape == (1088, 1408, 3) and meta[11] == 2.0
    assert tuple(meta[7:11]) == (0, 0, 1040, 1408)          # 1040x1408, top-left


@pytest.mark.parametrize("text", ["2", "x,1", "3,1", "-1,2"])
def test_train_bad_scale_range(train, text, capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--scale-range", text])
    assert "--scale-range" in capsys.readouterr().err


# ---------------------------------------------------------------- predict.py
def _tiny_run(model_dir):
    """A run folder: config.json and a checkpoint of a model "trained" on 64 crops."""
    from model_helpers import confident_heads, make_config

    import mrcnn.model as modellib
    from mrcnn.config import save_config

    config = make_config(NAME="cell", IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="crop",
                         IMAGE_MIN_DIM=64)
    run = model_dir / "cell20240101T0000"
    run.mkdir(parents=True)
    infer = make_config(NAME="cell", IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="none",
                        IMAGE_SHAPE=[64, 64, 3])
    model = modellib.MaskRCNN("inference", infer, str(model_dir))
    # every ROI a class-1 detection (score 0.35) with mask probability 0.88 in its box,
    # whatever the random initialisation: every image gets instances
    confident_heads(model, class_id=1, score=0.35, mask_probability=0.88)
    model.keras_model.save_weights(str(run / "mask_rcnn_cell_0001.h5"))
    save_config(config, str(run / "config.json"))
    return run


# The test images: x2 they are 120x144, larger than the 64x64 trained input, so --tile runs
# 3x3 tiles of 32 original pixels (an inner tile, edges, corners and every seam); 100x120
# gave 4x5 tiles for the same checks (PyTorch's eager inference takes ~1 s a tile on 2 cores).
TEST_H, TEST_W = 60, 72


def _images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:TEST_H, 0:TEST_W]
    for i in range(2):
        image = 120 + 80 * np.sin(yy / (5.0 + i)) * np.cos(xx / 7.0) + rng.normal(
            0, 8, (TEST_H, TEST_W))
        skimage.io.imsave(str(folder / f"img{i}.png"), np.clip(image, 0, 255).astype(np.uint8),
                          check_contrast=False)
    return folder


def test_predict_scale_and_tile_map_to_the_inference_config(predict, tmp_path):
    run = _tiny_run(tmp_path / "logs")
    cfg = str(run / "config.json")
    parse = predict.build_parser().parse_args
    args = parse(["images", "--scale", "2", "--tile"])
    args.image_sizes = [(100, 120)]
    config, trained = predict.inference_config(cfg, args)
    assert config.IMAGE_SCALE == 2.0 and config.IMAGE_RESIZE_MODE == "none"
    assert list(config.IMAGE_SHAPE) == [64, 64, 3]               # tiles of the trained input
    args = parse(["images", "--scale", "2"])
    args.image_sizes = [(100, 120)]
    config, _ = predict.inference_config(cfg, args)
    assert list(config.IMAGE_SHAPE) == [256, 256, 3]             # holds 200x240
    args = parse(["images"])
    args.image_sizes = [(100, 120)]
    config, _ = predict.inference_config(cfg, args)
    assert config.IMAGE_SCALE == 1.0 and list(config.IMAGE_SHAPE) == [128, 128, 3]


def test_predict_scale_tile_writes_a_valid_submission_at_the_original_size(predict, tmp_path):
    run = _tiny_run(tmp_path / "logs")
    images = _images(tmp_path / "test")
    outs = {}
    for name, extra in (("tiled", ["--scale", "2", "--tile"]), ("whole", ["--scale", "2"])):
        out = tmp_path / f"{name}.csv"
        predict.main([str(images), "--weights", str(run / "mask_rcnn_cell_0001.h5"),
                      "--out", str(out), "--min-score", "0.0", "--min-area", "1"] + extra)
        rows = list(csv.reader(open(out)))[1:]
        assert sorted({r[0] for r in rows}) == ["img0", "img1"]
        outs[name] = 0
        for image_id in ("img0", "img1"):
            masks = [rle_decode(r[1], (TEST_H, TEST_W)) for r in rows
                     if r[1] and r[0] == image_id]
            assert masks and all(m.shape == (TEST_H, TEST_W) and m.any() for m in masks)
            assert np.sum(masks, axis=0).max() == 1                  # no overlaps
            outs[name] += len(masks)


# ---------------------------------------------------------------- README.md, as written
def _readme(marker, language):
    import re
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert f"<!-- {marker} -->" in text, f"README.md lost <!-- {marker} -->"
    block = text.split(f"<!-- {marker} -->", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", block, re.S).group(1)


def _readme_commands():
    import shlex
    lines = [line for line in _readme("readme-image-size", "bash").splitlines() if line.strip()]
    assert len(lines) == 2
    return [[os.path.expandvars(a) for a in shlex.split(line)] for line in lines]


def _run_predict_line(predict, argv, images):
    assert argv[:2] == ["python", "samples/cell/predict.py"]
    predict.main(argv[2:])
    rows = list(csv.reader(open("submission.csv")))
    assert rows[0] == ["id", "predicted"]
    assert {r[0] for r in rows[1:]} == {os.path.splitext(f)[0] for f in os.listdir(images)}


def test_readme_image_size_predict_command_runs_as_written(predict, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tiny_run(tmp_path / "logs")                         # what --weights last finds in ./logs
    (tmp_path / "data").mkdir()
    images = _images(tmp_path / "data" / "test")
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    _run_predict_line(predict, _readme_commands()[1], images)


def test_readme_image_size_python_block_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _tiny_run(tmp_path / "runs")
    shutil.copy(run / "mask_rcnn_cell_0001.h5", run / "mask_rcnn_cell_0008.h5")
    # A part of a 520x704 image: x2 it is 600x800, 2x2 tiles of 256 original pixels for the
    # 512x512 input (the whole image took 3x4; the same checks, 12 fewer 512x512 inferences)
    image = OneCellImage().image[:300, :400]
    namespace = {"RUN": str(run), "image": image}
    exec(compile(_readme("readme-image-size-python", "python"), "README.md", "exec"), namespace)
    r, tiled = namespace["r"], namespace["tiled"]
    assert r["masks"].shape == (300, 400) and r["rois"].shape == (r["masks"].count, 4)
    assert (r["rois"][:, 2] <= 300).all() and (r["rois"][:, 3] <= 400).all()
    assert namespace["config"].IMAGE_SCALE == 2.0
    dense = tiled.detect([image[:200, :300]])[0]
    assert dense["masks"].shape[:2] == (200, 300)


@pytest.mark.slow
def test_readme_image_size_commands_train_then_predict(train, predict, tmp_path, monkeypatch):
    """The two commands of README.md as written; training gets small sizes appended
    (later flags win: 1 epoch of 2 steps on 6 generated images)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "DEFAULT_CACHE", str(tmp_path / "cache" / "synthetic_sartorius"))
    data = tmp_path / "data"
    monkeypatch.setenv("DATA", str(data))
    train_line, predict_line = _readme_commands()
    assert train_line[:2] == ["python", "samples/cell/train.py"]
    scores = train.main(train_line[2:] + ["--epochs", "1", "--steps-per-epoch", "2",
                                          "--validation-steps", "1", "--synthetic-images", "6",
                                          "--folds", "3"])
    assert 0.0 <= scores["map_iou"] <= 1.0
    data.mkdir()
    images = data / "test"
    shutil.copytree(tmp_path / "cache" / "synthetic_sartorius" / "train", images)
    for extra in sorted(os.listdir(images))[1:]:          # one 520x704 image is enough
        os.remove(images / extra)
    _run_predict_line(predict, predict_line, images)
