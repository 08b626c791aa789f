"""samples/nucleus/train.py: --scale / --scale-range, and inference on every DSB 2018 image size."""

import argparse
import importlib.util
import os
import time

import numpy as np
import pytest

from mrcnn.data.fit import fit_image
from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.inference.tiling import TiledModel, default_tile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# DSB 2018 stage 1 image sizes (height, width)
DSB_SIZES = [(520, 696), (1040, 1388), (256, 320), (360, 640)]


@pytest.fixture(scope="module")
def nucleus():
    path = os.path.join(ROOT, "samples", "nucleus", "train.py")
    spec = importlib.util.spec_from_file_location("nucleus_train_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(nucleus, argv):
    """The parsed command line of main() (main's parser, stopped before it runs)."""
    captured = {}

    class Stop(Exception):
        pass

    def parse(self, args=None, namespace=None):
        captured["args"] = original(self, args, namespace)
        raise Stop

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = parse
    try:
        nucleus.main(argv)
    except Stop:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured["args"]


def test_scale_flags_map_to_the_config(nucleus):
    attrs = nucleus.training_attrs(_args(nucleus, []))
    assert attrs["IMAGE_SCALE"] == 1.0 and attrs["IMAGE_SCALE_RANGE"] is None
    attrs = nucleus.training_attrs(_args(nucleus, ["--data", "/x"]))
    assert attrs["IMAGE_SCALE"] == 2.0 and attrs["IMAGE_RESIZE_MODE"] == "crop"
    assert attrs["IMAGE_MIN_DIM"] == 512 and "IMAGE_MIN_SCALE" not in attrs
    attrs = nucleus.training_attrs(_args(nucleus, ["--scale", "1.5", "--scale-range",
                                                   "1.25,2.5"]))
    assert attrs["IMAGE_SCALE"] == 1.5 and attrs["IMAGE_SCALE_RANGE"] == (1.25, 2.5)
    config = type("C", (nucleus.NucleusConfig,), attrs)()
    assert config.IMAGE_SCALE == 1.5 and config.IMAGE_SCALE_RANGE == (1.25, 2.5)
    infer = nucleus.inference_config(attrs, 256)
    assert infer.IMAGE_SCALE == 1.5 and infer.IMAGE_SCALE_RANGE is None


@pytest.mark.parametrize("text", ["2", "a,b", "2,1", "0,1", "1,2,3"])
def test_bad_scale_range_is_refused_by_the_parser(nucleus, text, capsys):
    with pytest.raises(SystemExit):
        _args(nucleus, ["--scale-range", text])
    assert "--scale-range" in capsys.readouterr().err
    assert nucleus.parse_scale_range("1.5,2.5") == (1.5, 2.5)


def test_real_data_inference_config_tiles_every_dsb_size(nucleus):
    attrs = nucleus.training_attrs(_args(nucleus, ["--data", "/x"]))
    config = nucleus.inference_config(attrs, 1024)
    assert list(config.IMAGE_SHAPE) == [1024, 1024, 3] and config.IMAGE_SCALE == 2.0
    assert default_tile(config) == (512, 512)
    # the failure of issue 13: scaled x2, a 520x696 image does not fit one input...
    with pytest.raises(ValueError, match=r"1040x1392 after resizing.*detect_tiled"):
        fit_image(np.zeros((520, 696, 3), np.uint8), config, training=False)
    # ...a 256x320 one does (512x640, in the top-left corner)
    image, window, scale, _, _ = fit_image(np.zeros((256, 320, 3), np.uint8), config,
                                           training=False)
    assert image.shape == (1024, 1024, 3) and tuple(window) == (0, 0, 512, 640)


def _nuclei_image(h, w, seed):
    """Bright round nuclei on a dark background, [h, w, 3] uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.full((h, w), 12.0)
    for _ in range(max(4, h * w // 6000)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 12)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.uniform(120, 230)
    image += rng.normal(0, 4, (h, w))
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


TINY = dict(TOP_DOWN_PYRAMID_SIZE=32, MASK_HEAD_CHANNELS=32, FPN_CLASSIF_FC_LAYERS_SIZE=64,
            PRE_NMS_LIMIT=500, POST_NMS_ROIS_TRAINING=100, POST_NMS_ROIS_INFERENCE=100,
            TRAIN_ROIS_PER_IMAGE=32,
            DETECTION_MAX_INSTANCES=40,
            DETECTION_MIN_CONFIDENCE=0.0, IMAGE_SCALE=2.0)


@pytest.fixture(scope="module")
def dsb_model(nucleus, tmp_path_factory):
    """The sample's inference model for every DSB size: a 512x512 input, x2, in tiles."""
    config = nucleus.inference_config(TINY, 512)                # tiles of 256 original px
    model = nucleus.inference_model(config, str(tmp_path_factory.mktemp("nucleus")))
    assert isinstance(model, TiledModel) and default_tile(config) == (256, 256)
    return model


# Every size runs the same 512x512 model input, tile after tile; only the tiling (NumPy)
# differs. The two large sizes (12 and 42 tiles, ~4 min of PyTorch's eager inference on
# 2 cores) are slow tests: the TensorFlow pass runs them, the JAX and PyTorch passes run
# the two small sizes (2 and 6 tiles), which already put several tiles through the backend.
@pytest.mark.parametrize("k", [
    pytest.param(k, marks=pytest.mark.slow) if h * w > 360 * 640 else k
    for k, (h, w) in enumerate(DSB_SIZES)], ids=[f"{h}x{w}" for h, w in DSB_SIZES])
def test_inference_on_every_dsb_size_with_x2_upscaling(dsb_model, k):
    h, w = DSB_SIZES[k]
    image = _nuclei_image(h, w, k)
    t0 = time.time()
    r = dsb_model.detect([image], sparse=True)[0]
    n = r["masks"].count
    print(f"{h}x{w}: {n} detections in {time.time() - t0:.1f}s")
    assert isinstance(r["masks"], SparseMasks) and r["masks"].shape == (h, w)
    assert r["rois"].shape == (n, 4) and r["scores"].shape == (n,)
    assert (r["rois"][:, :2] >= 0).all() and (r["rois"][:, 2] <= h).all()
    assert (r["rois"][:, 3] <= w).all()


def test_dense_masks_of_a_tiled_dsb_image(dsb_model):
    dense = dsb_model.detect([_nuclei_image(256, 320, 9)])[0]
    assert dense["masks"].shape[:2] == (256, 320) and dense["masks"].dtype == bool


def test_overlaps_flag_sets_the_validation_post_processing(nucleus):
    assert _args(nucleus, []).overlaps == "score"
    post = nucleus.postprocess_config(_args(nucleus, ["--overlaps", "nested"]).overlaps)
    assert (post.overlap_order, post.min_score, post.min_area) == ("nested", 0.5, 15)
    assert nucleus.postprocess_config().overlap_order == "score"


def test_bad_overlaps_value_is_refused_by_the_parser(nucleus, capsys):
    with pytest.raises(SystemExit):
        _args(nucleus, ["--overlaps", "area"])
    err = capsys.readouterr().err
    assert "--overlaps" in err and "nested" in err
