"""mrcnn.inference.fitted_input: TTA variants each in an input of their own size.

Reference: a model built directly at each variant's input size, with the same
weights, detecting that variant (`Transform.image`, `detect`, `Transform.invert`).
"""

import keras
import numpy as np
import pytest
from model_helpers import confident_heads, make_config

import mrcnn.model as modellib
from mrcnn.inference import tta_input_shape
from mrcnn.inference.fitted_input import fits_each_input, model_at_input
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
    h, w = tta_input_shape([image.shape], [t])
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
