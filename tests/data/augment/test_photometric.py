import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.data.masks import InstanceLayers

# Backend-independent: NumPy photometric augmenters; no Keras op.
pytestmark = pytest.mark.backend_independent

EXACT = [A.Brightness(25), A.Contrast((0.8, 1.2)), A.ChannelShift(15)]


@pytest.mark.parametrize("augmenter", EXACT, ids=repr)
def test_exact_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                           assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter)


def test_photometric_changes_only_the_window():
    image = np.arange(400, dtype=np.uint8).reshape(20, 20, 1).repeat(3, axis=2) // 2
    layers = InstanceLayers(np.zeros((20, 20, 1), np.uint16), [])
    sample = A.Brightness(50).apply(A.Sample(image, layers, (0, 0, 10, 20)),
                                    np.random.default_rng(0))
    delta = np.random.default_rng(0).uniform(-50, 50)
    expected = image.astype(np.float64)
    expected[:10] = np.clip(np.rint(expected[:10] + delta), 0, 255)
    np.testing.assert_array_equal(sample.image, expected.astype(np.uint8))
    assert sample.image is not image and image[0, 0, 0] == 0     # input untouched

    sample = A.ChannelShift(30).apply(A.Sample(image, layers), np.random.default_rng(1))
    shift = np.random.default_rng(1).uniform(-30, 30)
    expected = np.clip(image + np.float32(shift), image.min(), image.max())
    np.testing.assert_array_equal(sample.image, np.rint(expected).astype(np.uint8))

    sample = A.Contrast((0.5, 0.5)).apply(A.Sample(image, layers), np.random.default_rng(2))
    mean = image.astype(np.float32).mean()
    expected = np.clip(np.rint((image - mean) * 0.5 + mean), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sample.image, expected)
