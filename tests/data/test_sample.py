"""Tests of mrcnn/data/sample.py: one Dataset image -> the arrays of one model input."""

import numpy as np
import pytest
from data_helpers import Cfg, Squares, make_cfg

from mrcnn.data import augment as A
from mrcnn.data.boxes import extract_bboxes
from mrcnn.data.fit import fit_image, resize_mask
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks import minimize_mask
from mrcnn.data.fit import draw_image_scale
from mrcnn.data.generator import DataGenerator
from mrcnn.data.cache import SampleCache
from mrcnn.data.sample import (SampleError, finish_sample, keep_largest, load_image_gt, plan,
                               prepare_sample, sample_error, sample_error_in)

# Backend-independent: load_image_gt and the sample stages are NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_image_placed_in_window(shapes):
    cfg = Cfg()
    image_id = 0
    image, meta, class_ids, bbox, mask = load_image_gt(shapes, cfg, image_id)
    original = shapes.load_image(image_id)
    window = meta[7:11].astype(int)
    # 96x112 scaled to fit 128 (square mode): short side 96 -> scale 128/112 for long side
    h, w = window[2] - window[0], window[3] - window[1]
    assert max(h, w) == 128 and abs(h / w - original.shape[0] / original.shape[1]) < 0.02
    assert image[: window[0]].sum() == 0  # top padding is zero
    assert class_ids.shape[0] == bbox.shape[0] == mask.shape[-1]


def test_keep_largest_and_warning(caplog):
    ids = np.array([1, 2, 3], np.int32)
    bbox = np.array([[0, 0, 2, 2], [0, 0, 10, 10], [0, 0, 5, 5]], np.int32)
    mask = np.zeros((4, 4, 3), bool)
    mask[..., 1] = True
    k_ids, k_box, k_mask = keep_largest(ids, bbox, mask, 2)
    np.testing.assert_array_equal(k_ids, [2, 3])
    assert k_mask[..., 0].all()


def reference_sample(dataset, config, image_id, rng):
    """The single-stage pipeline: fit the image, resize full masks, then minimize."""
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    original_shape = image.shape
    image, window, scale, padding, crop = fit_image(image, config, rng=rng, training=True)
    mask = resize_mask(mask, scale, padding, crop)
    if mask.shape[:2] != image.shape[:2]:
        th, tw = image.shape[:2]
        t, l = (th - mask.shape[0]) // 2, (tw - mask.shape[1]) // 2
        mask = np.pad(mask, [(t, th - mask.shape[0] - t), (l, tw - mask.shape[1] - l), (0, 0)])
    keep = mask.any(axis=(0, 1))
    mask, class_ids = mask[..., keep], class_ids[keep]
    bbox = extract_bboxes(mask)
    class_ids, bbox, mask = keep_largest(class_ids, bbox, mask, config.MAX_GT_INSTANCES)
    active = np.zeros(config.NUM_CLASSES, np.int32)
    active[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1
    meta = compose_image_meta(image_id, original_shape, image.shape, window, scale, active)
    return image, meta, class_ids, bbox, minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)


@pytest.mark.parametrize("values", [
    {},                                                                # square, padded
    {"IMAGE_RESIZE_MODE": "none", "IMAGE_SHAPE": [128, 128, 3]},       # padded only
    {"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 100, "IMAGE_SHAPE": [128, 192, 3]},
    {"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128},
    {"MAX_GT_INSTANCES": 3},
    {"IMAGE_RESIZE_MODE": "none", "IMAGE_SHAPE": [192, 192, 3], "IMAGE_SCALE": 1.5},
    {"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128,
     "IMAGE_SCALE": 0.75},
    {"IMAGE_SCALE": 0.5},                                              # square: the mode wins
])
def test_two_stages_equal_the_single_stage_reference(values):
    ds = Squares(count=3)
    cfg = make_cfg(**values)
    for image_id in range(3):
        ours = load_image_gt(ds, cfg, image_id, use_mini_mask=True,
                             rng=np.random.default_rng(image_id))
        ref = reference_sample(ds, cfg, image_id, np.random.default_rng(image_id))
        for name, a, b in zip(("image", "meta", "class_ids", "bbox", "mask"), ours, ref):
            np.testing.assert_array_equal(a, b, err_msg=f"{values} {image_id} {name}")


def test_flip_variant_entries_are_prepared_flipped():
    ds = Squares(count=2, height=64, width=64)
    variants = A.add_flip_variants(Squares(count=2, height=64, width=64, prepare=False))
    variants.prepare()
    cfg = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[64, 64, 3])
    plain = prepare_sample(ds, cfg, 1, False)
    expected = {(False, False): (slice(None), slice(None)),
                (False, True): (slice(None), slice(None, None, -1)),
                (True, False): (slice(None, None, -1), slice(None)),
                (True, True): (slice(None, None, -1), slice(None, None, -1))}
    for image_id, info in enumerate(variants.image_info):
        if info["id"] != 1:
            continue
        flips = expected[(info["vertical_flip"], info["horizontal_flip"])]
        prepared = prepare_sample(variants, cfg, image_id, False)
        np.testing.assert_array_equal(prepared.image, plain.image[flips])
        np.testing.assert_array_equal(prepared.instances.to_masks(),
                                      plain.instances.to_masks()[flips])


def test_instances_cropped_away_are_dropped():
    ds = Squares(count=1)
    cfg = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[128, 128, 3])

    class LeftHalf(A.Augmenter):
        kind = A.RESAMPLE

        def apply(self, sample, rng):
            return sample.crop(0, 0, sample.shape[0], sample.shape[1] // 2)

    image, meta, class_ids, bbox, mask = load_image_gt(ds, cfg, 0, augmentation=LeftHalf())
    squares = ds.image_info[0]["squares"]
    inside = [k for k, (y, x, s) in enumerate(squares) if x < 56]
    assert class_ids.shape[0] == bbox.shape[0] == mask.shape[-1] == len(inside)
    assert mask.any(axis=(0, 1)).all()
    # the 96x56 crop sits in the 128x128 input's top-left corner: the window says where
    np.testing.assert_array_equal(meta[7:11], [0, 0, 96, 56])
    assert image[96:].max() == 0 and image[:, 56:].max() == 0


class _Refs(Squares):
    def image_reference(self, image_id):
        return f"/data/train/{image_id}.png"


@pytest.mark.parametrize("original, kept", [
    (OSError("broken data stream when reading image file"), OSError),
    (FileNotFoundError("no such file"), FileNotFoundError),
    (ValueError("masks are 10x10"), ValueError),
    (KeyError("annotations"), SampleError),          # KeyError would quote the message
])
def test_sample_error_names_the_image_and_keeps_the_type(original, kept):
    ds = _Refs(count=3)
    error = sample_error(original, ds, 2)
    assert type(error) is kept and issubclass(SampleError, ValueError)
    assert str(error) == (
        f"image 2 (/data/train/2.png) of _Refs: cannot build its training sample: "
        f"{type(original).__name__}: {original}. Fix or replace that file (or its masks), or "
        f"remove the image from the dataset, then train again")
    assert (error.image_id, error.image_reference) == (2, "/data/train/2.png")
    assert sample_error(error, ds, 2) is error                       # not wrapped twice


def test_sample_error_without_a_reference_names_the_source_id():
    class NoPath(Squares):
        def image_reference(self, image_id):
            raise RuntimeError("broken image_reference")

    error = sample_error(ValueError("bad"), NoPath(count=2), 1)
    assert str(error).startswith("image 1 (id 1) of NoPath: cannot build its training sample: "
                                 "ValueError: bad.")


def test_sample_error_is_rebuilt_from_a_traceback_text():
    ds = _Refs(count=3)
    error = sample_error(OSError("truncated file"), ds, 1)
    text = ("Graph execution error:\n\nTraceback (most recent call last):\n  File \"x.py\", "
            "line 3, in f\n    raise wrapped\n"
            f"OSError: {error}\n\n\n\t [[{{{{node PyFunc}}}}]]")
    rebuilt = sample_error_in(text)
    assert type(rebuilt) is OSError and str(rebuilt) == str(error)
    assert (rebuilt.image_id, rebuilt.image_reference) == (1, "/data/train/1.png")
    other = sample_error(KeyError("k"), ds, 0)
    assert type(sample_error_in(f"noise\nmrcnn.data.sample.SampleError: {other}\n")) \
        is SampleError
    assert sample_error_in("InvalidArgumentError: something else entirely") is None


# ---------------------------------------------------------------- IMAGE_SCALE_RANGE
def _mask_iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_multi_scale_sample_is_the_drawn_scale_of_the_original():
    ds = Squares(count=2)                                   # 96x112 images
    cfg = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[256, 256, 3],
                   IMAGE_SCALE_RANGE=(1.2, 2.0))
    for seed in range(4):
        factor = draw_image_scale(cfg, np.random.default_rng(seed))  # the sample's first draw
        assert 1.2 <= factor <= 2.0
        image, meta, class_ids, bbox, mask = load_image_gt(ds, cfg, 0, rng=seed)
        h, w = round(96 * factor), round(112 * factor)
        window = meta[7:11].astype(int)
        assert tuple(window) == (0, 0, h, w)               # in the input's top-left corner
        assert meta[11] == pytest.approx(factor)
        # masks: the original squares resized by the factor (skimage nearest), within a pixel
        gt, gt_ids = ds.load_mask(0)
        ref = skimage_nearest(gt, (h, w))
        full = np.zeros((256, 256, gt.shape[-1]), bool)
        full[window[0]:window[2], window[1]:window[3]] = ref
        np.testing.assert_array_equal(class_ids, gt_ids)
        for k in range(gt.shape[-1]):
            assert _mask_iou(mask[..., k], full[..., k]) > 0.9
        np.testing.assert_allclose(bbox, extract_bboxes(full), atol=1)
    # the same seed gives the same sample
    a, b = load_image_gt(ds, cfg, 1, rng=3), load_image_gt(ds, cfg, 1, rng=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def skimage_nearest(mask, shape):
    import skimage.transform
    out = skimage.transform.resize(mask.astype(np.float32), shape + (mask.shape[-1],), order=0,
                                   mode="constant", anti_aliasing=False)
    return out > 0.5


def test_multi_scale_larger_than_the_input_is_cropped_and_plans_layers():
    ds = Squares(count=1)
    cfg = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[128, 128, 3],
                   IMAGE_SCALE_RANGE=(1.8, 2.2))
    assert plan(cfg, None) == (False, False)         # full layers, boxes change per epoch
    image, meta, class_ids, bbox, mask = load_image_gt(ds, cfg, 0, rng=0, use_mini_mask=False)
    assert image.shape == (128, 128, 3) and tuple(meta[7:11]) == (0, 0, 128, 128)
    assert mask.shape[:2] == (128, 128)
    np.testing.assert_array_equal(bbox, extract_bboxes(mask))


def test_the_cache_holds_unscaled_samples_and_epochs_draw_new_scales():
    ds = Squares(count=2)
    cfg = make_cfg(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128,
                   IMAGE_SCALE_RANGE=(0.6, 1.6))
    cache = SampleCache()
    gen = DataGenerator(ds, cfg, seed=0, cache=cache, shuffle=False)
    scales = []
    for epoch in range(3):
        gen.epoch = epoch
        metas = gen[0]["input_image_meta"]
        scales.append(np.round(metas[:, 11], 6))                # meta scale per image
    assert len({tuple(s) for s in scales}) == 3                 # a new scale every epoch
    assert cache.stats().hits == 4 and cache.stats().misses == 2
    prepared = gen.prepared(0)
    assert prepared.image_scale == 1.0 and prepared.image.shape == (96, 112, 3)


def test_a_sample_prepared_at_another_image_scale_is_prepared_again(caplog):
    ds = Squares(count=1)
    old = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[192, 192, 3])
    new = make_cfg(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[192, 192, 3], IMAGE_SCALE=1.5)
    stale = prepare_sample(ds, old, 0, mini_masks=True)   # e.g. from a disk cache of old
    assert stale.image_scale == 1.0
    with caplog.at_level("WARNING"):
        got = finish_sample(stale, ds, new, 0, rng=0)
    assert "IMAGE_SCALE 1" in caplog.text and "needs 1.5" in caplog.text
    ref = load_image_gt(ds, new, 0, rng=0, use_mini_mask=True)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
