import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.data.masks import InstanceLayers

# Backend-independent: NumPy geometric augmenters; no Keras op.
pytestmark = pytest.mark.backend_independent

EXACT = [
    A.Fliplr(p=1), A.Flipud(p=1), A.Rot90((1,)), A.Rot90((2,)), A.Rot90((3,)),
    A.RandomCrop(64), A.RandomCrop((150, 140)),
]
RESAMPLING = [
    A.Rotate(15), A.Rotate(90), A.RandomScale((0.7, 1.4), (0.8, 1.25)), A.ScaleCrop(64),
    A.ScaleCrop(96, scale=(0.4, 0.5)),
]


@pytest.mark.parametrize("augmenter", EXACT, ids=repr)
def test_exact_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                           assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter)


@pytest.mark.parametrize("augmenter", RESAMPLING, ids=repr)
def test_resampling_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                                assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter, resampling=True)


def test_transforms_move_masks_like_numpy(bright_squares):
    image, masks = bright_squares(40, 50, ((3, 4, 9), (20, 30, 7)))
    for k in range(4):
        out_image, out_masks = A.Rot90((k,))(image, masks, np.random.default_rng(0))
        np.testing.assert_array_equal(out_image, np.rot90(image, k))
        np.testing.assert_array_equal(out_masks, np.rot90(masks, k))
    out_image, out_masks = A.Fliplr(p=1)(image, masks)
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    crop = A.RandomCrop((20, 25))
    rng = np.random.default_rng(5)
    y, x = int(rng.integers(0, 21)), int(rng.integers(0, 26))
    out_image, out_masks = crop(image, masks, np.random.default_rng(5))
    np.testing.assert_array_equal(out_image, image[y:y + 20, x:x + 25])
    np.testing.assert_array_equal(out_masks, masks[y:y + 20, x:x + 25])


def test_scale_crop_at_scale_one_is_a_plain_crop_and_pads_small_images(bright_squares):
    image, masks = bright_squares()
    rng = np.random.default_rng(7)
    rng.uniform(), rng.uniform()                                 # scale and aspect draws
    y, x = int(rng.integers(0, 120 - 50 + 1)), int(rng.integers(0, 128 - 60 + 1))
    out_image, out_masks = A.ScaleCrop((50, 60), scale=(1, 1), aspect=(1, 1))(
        image, masks, np.random.default_rng(7))
    np.testing.assert_array_equal(out_image, image[y:y + 50, x:x + 60])
    np.testing.assert_array_equal(out_masks, masks[y:y + 50, x:x + 60])
    # scaled to 60x64, placed inside a 100x100 crop: zeros around it
    sample = A.ScaleCrop(100, scale=(0.5, 0.5), aspect=(1, 1)).apply(
        A.Sample(image, InstanceLayers.from_masks(masks)), np.random.default_rng(1))
    y1, x1, y2, x2 = sample.window
    assert (y2 - y1, x2 - x1) == (60, 64)
    inside = np.zeros((100, 100), bool)
    inside[y1:y2, x1:x2] = True
    assert sample.image[~inside].max() == 0 and sample.image[inside].min() == 20
    assert not sample.instances.to_masks()[~inside].any()


def test_kinds_of_geometric_augmenters():
    assert A.Fliplr().kind == A.Flipud().kind == A.Rot90().kind == A.DIHEDRAL
    for augmenter in (A.Rotate(), A.RandomScale(), A.RandomCrop(8), A.ScaleCrop(8)):
        assert augmenter.kind == A.RESAMPLE
    assert repr(A.Flipud(p=0.25)) == "Flipud(p=0.25)"
