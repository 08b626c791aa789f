"""mrcnn.inference.fitted_input: TTA variants each in an input of their own size.

Reference: a model built directly at each variant's input size, with the same
weights, detecting that variant (`Transform.image`, `detect`, `Transform.invert`).
"""

import keras
import numpy as np
import pytest
from model_helpers import confident_heads, make_config

import mrcnn.model as modellib
from mrcnn.data.fit import scaled_size
from mrcnn.inference import detect_fitted, tta_input_shape
from mrcnn.inference.fitted_input import (
    exceeds_input, fits_each_input, fitted_shape, model_at_input, model_input_size)
from mrcnn.inference.transforms import Transform
from mrcnn.inference.tta import tta_results

VARIANTS = ["none", "rot90", "s1.25", "lr-rot270"]


def _image():
    rng = np.random.default_rng(0)
    image = (rng.random((64, 128, 3)) * 60).astype(np.uint8)   # no padding in its own input
    image[10:30, 20:50] = 200
    image[44:64, 100:128] = 150                                  # at the bottom-right edges
    return image


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 192x192-input model with predictable scores, and its weights."""
    keras.utils.set_random_seed(0)
    folder = str(tmp_path_factory.mktemp("fitted"))
    config = make_config(IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[192, 192, 3],
                         DETECTION_MIN_CONFIDENCE=0.3)
    model = confident_heads(modellib.MaskRCNN("inference", config, folder), score=0.7,
                            mask_probability=0.8)
    layer = model.keras_model.get_layer("mrcnn_mask")       # masks that follow the image
    kernel, bias = layer.get_weights()
    layer.set_weights([np.random.default_rng(1).normal(0, 0.5, kernel.shape).astype(kernel.dtype),
                       bias])
    return model, model.keras_model.get_weights(), folder


def _reference(model, weights, image, name):
    """The variant detected by a model built at its own input size, mapped back."""
    t = Transform.parse(name)
    scale = getattr(model.config, "IMAGE_SCALE", 1.0)
    h, w = tta_input_shape([scaled_size(t.shape(image.shape), scale)], "none")
    config = make_config(**dict({k: v for k, v in vars(type(model.config)).items()
                                 if k.isupper()}, IMAGE_SHAPE=[h, w, 3]))
    ref = modellib.MaskRCNN("inference", config, model.model_dir)
    ref.keras_model.set_weights(weights)
    result = ref.detect([t.image(image)], soft_masks=True, sparse=True)[0]
    return t.invert(result, image.shape), (h, w)


def _same(a, b):
    np.testing.assert_array_equal(a["rois"], b["rois"])
    np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)
    np.testing.assert_array_equal(a["masks"].to_dense(), b["masks"].to_dense())


def test_each_variant_runs_in_an_input_of_its_own_size(built):
    model, weights, _ = built
    image = _image()
    got = tta_results(model, image, VARIANTS, soft_masks=True)
    shapes = set()
    for name, result in zip(VARIANTS, got):
        expected, shape = _reference(model, weights, image, name)
        shapes.add(shape)
        assert result["masks"].shape == (64, 128)
        assert result["class_ids"].size > 0, name
        _same(result, expected)
    assert shapes == {(64, 128), (128, 64), (128, 192)}
    # the model's own 192x192 input pads the image, and detects otherwise: the check can fail
    padded = model.detect([image], soft_masks=True, sparse=True)[0]
    plain = got[0]
    assert (padded["scores"].size != plain["scores"].size
            or not np.allclose(padded["soft_masks"].to_soft(), plain["soft_masks"].to_soft(),
                               atol=1e-3))
    # one twin per size, cached on the model
    assert sorted(model._input_twins) == [(64, 128), (128, 64), (128, 192)]


def test_twins_follow_the_models_weights(built):
    model, weights, _ = built
    image = _image()
    tta_results(model, image, ["rot90"])                     # builds the 128x64 twin
    layer = model.keras_model.get_layer("mrcnn_mask")
    kernel, bias = layer.get_weights()
    try:
        layer.set_weights([kernel[..., ::-1] * -1.5, bias + 0.2])   # e.g. load_weights later
        changed = model.keras_model.get_weights()
        got = tta_results(model, image, ["rot90"], soft_masks=True)[0]
        expected, _ = _reference(model, changed, image, "rot90")
        _same(got, expected)
        np.testing.assert_allclose(got["soft_masks"].to_soft(), expected["soft_masks"].to_soft())
    finally:
        model.keras_model.set_weights(weights)


def test_model_at_input_and_its_errors(built):
    model, _, _ = built
    assert fits_each_input(model)
    assert model_at_input(model, (192, 192)) is model
    twin = model_at_input(model, (64, 128))
    assert model_at_input(model, [64, 128]) is twin
    assert list(twin.config.IMAGE_SHAPE) == [64, 128, 3]
    assert twin.config.DETECTION_MIN_CONFIDENCE == model.config.DETECTION_MIN_CONFIDENCE
    with pytest.raises(ValueError, match=r"two positive multiples of 64, got \(60, 128\)"):
        model_at_input(model, (60, 128))
    with pytest.raises(ValueError, match=r"shape must be \(height, width\), got 64"):
        model_at_input(model, 64)

    class Detector:                                    # not a MaskRCNN: no twins
        config = model.config

        def detect(self, images):
            return []

    assert not fits_each_input(Detector())
    with pytest.raises(ValueError, match="needs a MaskRCNN in inference mode .* got Detector"):
        model_at_input(Detector(), (64, 64))


def test_a_variant_larger_than_the_model_input_runs_in_a_larger_twin(built):
    model, weights, _ = built
    image = np.zeros((150, 40, 3), np.uint8)                # s1.5: 225 x 60 > 192 x 192
    image[20:60, 5:30] = 200
    image[100:150, 10:40] = 150
    got = tta_results(model, image, ["none", "s1.5"], soft_masks=True)
    for name, result in zip(["none", "s1.5"], got):
        expected, shape = _reference(model, weights, image, name)
        assert result["masks"].shape == (150, 40)
        _same(result, expected)
    assert shape == (256, 64) and (256, 64) in model._input_twins


def test_the_models_image_scale_sizes_the_twins(built, tmp_path):
    """IMAGE_SCALE 2, a 256x256 input: a 64x128 image is 128x256 in the model, its rot90
    variant 256x128; each runs in an input of that size."""
    model, weights, _ = built
    config = make_config(**dict({k: v for k, v in vars(type(model.config)).items()
                                 if k.isupper()}, IMAGE_SCALE=2.0, IMAGE_SHAPE=[256, 256, 3]))
    scaled = modellib.MaskRCNN("inference", config, str(tmp_path))
    scaled.keras_model.set_weights(weights)
    image = _image()
    assert fitted_shape(scaled, image.shape) == (128, 256)
    assert fitted_shape(scaled, (65, 100)) == (192, 256)          # 130 x 200, rounded up
    assert fitted_shape(model, (65, 100)) == (128, 128)
    got = tta_results(scaled, image, ["none", "rot90"], soft_masks=True)
    for name, result in zip(["none", "rot90"], got):
        expected, _ = _reference(scaled, weights, image, name)
        assert result["masks"].shape == (64, 128)
        _same(result, expected)
    assert sorted(scaled._input_twins) == [(128, 256), (256, 128)]


def test_detect_fitted_runs_each_image_at_its_own_size_in_order(built):
    model, weights, _ = built
    small = _image()[:, :64]                                   # 64x64
    images = [_image(), small, _image()[::-1]]
    got = detect_fitted(model, images, soft_masks=True, sparse=True)
    for image, result in zip(images, got):
        expected, _ = _reference(model, weights, image, "none")
        assert result["masks"].shape == image.shape[:2]
        _same(result, expected)
    # a detector with no twins detects as it is
    class Plain:
        def detect(self, images, **kwargs):
            return [("plain", kwargs)] * len(images)
    assert detect_fitted(Plain(), [small], sparse=True) == [("plain", {"sparse": True})]


def test_an_image_smaller_than_a_tile_runs_in_its_own_input(built):
    """TiledModel / detect_tiled: one tile, smaller than the 192x192 input, not padded into it."""
    from mrcnn.inference import TiledModel
    model, weights, _ = built
    image = _image()
    expected, shape = _reference(model, weights, image, "none")
    assert shape == (64, 128)
    got = TiledModel(model).detect([image], soft_masks=True, sparse=True)[0]
    order = np.argsort(-expected["scores"], kind="stable")
    np.testing.assert_allclose(got["scores"], expected["scores"][order], rtol=1e-5)
    np.testing.assert_array_equal(got["masks"].to_dense(), expected["masks"].to_dense()[..., order])
    padded = model.detect([image], sparse=True)[0]              # what the tile got before
    assert (padded["scores"].size != got["scores"].size
            or not np.array_equal(padded["masks"].to_dense(), got["masks"].to_dense()))


def test_tta_refuses_an_image_larger_than_the_input_as_detect_does(built):
    model, _, _ = built
    with pytest.raises(ValueError, match=r"the 200x40 image needs a 256x64 input .*larger than "
                                         r"the model input 192x192; run it in overlapping tiles"):
        tta_results(model, np.zeros((200, 40, 3), np.uint8), ["none", "rot90"])


def test_exceeds_input_compares_each_side_with_the_model_input(built):
    model = built[0]
    h, w = 192, 192                                  # the fixture's IMAGE_SHAPE
    assert model_input_size(model) == (h, w)
    assert not exceeds_input(model, (h, w))
    assert not exceeds_input(model, (h - 64, w))
    assert exceeds_input(model, (h + 1, w))
    assert exceeds_input(model, (h, w + 64))
    assert exceeds_input(model, (1, w + 1))


def test_readme_fitted_input_block_runs_as_written(built):
    import os
    import re
    model, weights, _ = built
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"),
                encoding="utf-8").read()
    assert "<!-- readme-fitted-input -->" in text, "README.md lost <!-- readme-fitted-input -->"
    block = re.search(r"```python\n(.*?)```", text.split("<!-- readme-fitted-input -->", 1)[1],
                      re.S).group(1)
    rng = np.random.default_rng(3)
    small = (rng.random((256, 256, 3)) * 200).astype(np.uint8)
    large = (rng.random((520, 704, 3)) * 200).astype(np.uint8)
    namespace = {"model": model, "image_256x256": small, "image_520x704": large}
    exec(compile(block, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert [r["masks"].shape[:2] for r in results] == [(256, 256), (520, 704)]
    assert {(256, 256), (576, 704)} <= set(model._input_twins)
    expected, _ = _reference(model, weights, small, "none")
    np.testing.assert_array_equal(results[0]["rois"], expected["rois"])


class _Images:
    """The smallest dataset `evaluate` reads: images, their masks, class names."""

    def __init__(self, images, masks):
        self.images, self.masks = images, masks
        self.image_ids = list(range(len(images)))
        self.class_names = ["BG", "object"]

    def load_image(self, image_id):
        return self.images[image_id]

    def load_mask(self, image_id):
        masks = self.masks[image_id]
        return masks, np.ones(masks.shape[-1], np.int32)


def test_evaluate_scores_each_image_in_an_input_of_its_own_size(built):
    """A validation set of two sizes: each image scored as a model built at its size detects it.

    `collect_predictions` (evaluate's detections) equals the reference's
    detections, which the padded 192x192 input does not give (precondition,
    so the check can fail); the score is computed independently with
    `map_iou` against ground truth that is the reference's own masks.
    """
    from mrcnn.evaluation import collect_predictions, evaluate, map_iou
    model, weights, _ = built
    images = [_image(), _image()[:, :64].copy()]                 # 64x128 and 64x64
    references = [_reference(model, weights, image, "none")[0] for image in images]
    truth = [r["masks"].to_dense() for r in references]
    assert all(t.shape[-1] > 0 for t in truth)
    dataset = _Images(images, truth)
    predictions, _ = collect_predictions(model, dataset)
    for got, expected in zip(predictions, references):
        _same(got, expected)
    padded = [model.detect([image], sparse=True)[0] for image in images]
    assert any(p["scores"].size != r["scores"].size
               or not np.array_equal(p["masks"].to_dense(), r["masks"].to_dense())
               for p, r in zip(padded, references))
    report = evaluate(model, dataset, verbose=0)
    expected = [map_iou(t, r["masks"].to_dense()) for t, r in zip(truth, references)]
    np.testing.assert_allclose([p["map_iou"] for p in report["per_image"]], expected, atol=1e-9)
    # an image larger than the input is refused, as by detect (no silent larger twin)
    large = np.zeros((200, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="larger than"):
        evaluate(model, _Images([large], [np.zeros((200, 64, 1), bool)]), verbose=0)
