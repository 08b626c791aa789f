import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.data.augment.base import check_probability, check_range, check_size
from mrcnn.data.masks import InstanceLayers

# Backend-independent: augmenter argument checks in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_window_follows_the_geometry():
    sample = A.Sample(np.zeros((12, 25, 1), np.uint8),
                      InstanceLayers(np.zeros((12, 25, 1), np.uint16), []), (2, 3, 10, 20))
    assert sample.flip(1).window.tolist() == [2, 5, 10, 22]
    sample.flip(1)
    # np.rot90 (k=1) maps pixel (y, x) to (W - 1 - x, y)
    assert sample.rot90(1).window.tolist() == [5, 2, 22, 10]
    sample.rot90(3)
    assert sample.crop(4, 5, 6, 10).window.tolist() == [0, 0, 6, 10]
    assert sample.pad(1, 0, 2, 0).window.tolist() == [1, 2, 7, 12]


def test_vanished_instances_have_empty_masks(bright_squares):
    image, masks = bright_squares()
    # a crop of the top-left corner keeps only square 0
    sample = A.Sample(image, InstanceLayers.from_masks(masks)).crop(0, 0, 40, 40)
    present = sample.instances.boxes()[1]
    np.testing.assert_array_equal(present, [True, False, False, False, False])


def test_sample_and_call_reject_bad_shapes():
    layers = InstanceLayers(np.zeros((4, 5, 1), np.uint16), [])
    with pytest.raises(ValueError, match=r"image must be \[H, W, C\], got shape \(4, 5\)"):
        A.Sample(np.zeros((4, 5)), layers)
    with pytest.raises(ValueError, match=r"instances cover \(4, 5\) but the image is 4x6"):
        A.Sample(np.zeros((4, 6, 3)), layers)
    with pytest.raises(ValueError, match=r"masks must be \[H, W, N\]"):
        A.Fliplr()(np.zeros((4, 5, 3)), np.zeros((4, 5), bool))


def test_argument_checks():
    with pytest.raises(ValueError, match="probability"):
        A.Fliplr(p=1.5)
    with pytest.raises(ValueError, match="low <= high"):
        A.RandomScale(scale=(2, 1))
    assert check_probability(1) == 1.0
    assert check_range(0.2, "factor", symmetric_around=1.0) == pytest.approx((0.8, 1.2))
    with pytest.raises(ValueError, match=r"scale must be a \(low, high\) pair, got 2"):
        check_range(2, "scale")
    with pytest.raises(ValueError, match="low > 0"):
        check_range((0, 1), "scale", positive=True)
    assert check_size(64) == (64, 64) and check_size((32, 48)) == (32, 48)
    with pytest.raises(ValueError, match=r"size must be a positive int or \(height, width\)"):
        check_size((0, 5))
