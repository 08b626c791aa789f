import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.data.masks import InstanceLayers
from mrcnn.dataset import Dataset

SQUARES = ((8, 10, 22), (50, 60, 20), (70, 12, 24), (14, 90, 18), (95, 95, 16))


def bright_squares(height=120, width=128, squares=SQUARES):
    """Dark image with bright squares; mask k covers exactly square k."""
    image = np.full((height, width, 3), 20, np.uint8)
    masks = np.zeros((height, width, len(squares)), bool)
    for k, (y, x, size) in enumerate(squares):
        image[y:y + size, x:x + size] = 200
        masks[y:y + size, x:x + size, k] = True
    return image, masks


def alignment(image, masks, dim=110, strong=110):
    """(share of mask pixels brighter than `dim`, share of pixels brighter
    than `strong` that lie under a mask)."""
    covered = masks.any(axis=2)
    value = image[:, :, 0]
    precision = (covered & (value > dim)).sum() / max(covered.sum(), 1)
    recall = (covered & (value > strong)).sum() / max((value > strong).sum(), 1)
    return precision, recall


EXACT = [
    A.Fliplr(p=1), A.Flipud(p=1), A.Rot90((1,)), A.Rot90((2,)), A.Rot90((3,)),
    A.RandomCrop(64), A.RandomCrop((150, 140)), A.Brightness(25), A.Contrast((0.8, 1.2)),
    A.ChannelShift(15), A.Compose([A.Fliplr(), A.Flipud(), A.Rot90(), A.RandomCrop(70)]),
]
GEOMETRY_ONLY = dict(brightness=0, contrast=None, channel_shift=0)
RESAMPLING = [
    A.Rotate(15), A.Rotate(90), A.RandomScale((0.7, 1.4), (0.8, 1.25)), A.ScaleCrop(64),
    A.ScaleCrop(96, scale=(0.4, 0.5)),
    A.cell_augmentation(crop_size=64, **GEOMETRY_ONLY), A.cell_augmentation(**GEOMETRY_ONLY),
    A.Sometimes(1.0, A.OneOf([A.Rotate(30), A.RandomScale((0.5, 0.8))])),
]


@pytest.mark.parametrize("augmenter", EXACT, ids=repr)
def test_exact_transforms_keep_masks_on_the_bright_squares(augmenter):
    image, masks = bright_squares()
    for seed in range(4):
        out_image, out_masks = augmenter(image, masks, np.random.default_rng(seed))
        assert out_masks.shape[:2] == out_image.shape[:2]
        assert out_masks.shape[2] == masks.shape[2]
        assert alignment(out_image, out_masks) == (1.0, 1.0)


@pytest.mark.parametrize("augmenter", RESAMPLING, ids=repr)
def test_resampling_transforms_keep_masks_on_the_bright_squares(augmenter):
    image, masks = bright_squares()
    for seed in range(4):
        out_image, out_masks = augmenter(image, masks, np.random.default_rng(seed))
        # The image is interpolated bilinearly (squares 200 on 20, zeros outside
        # the image), the masks take the nearest source pixel. Aligned, a mask
        # pixel's nearest source is bright, with weight >= 1/4: value >= 50; a
        # pixel above 190 has weight >= 0.94 on bright sources, so its nearest
        # source is bright and a mask covers it.
        assert alignment(out_image, out_masks, dim=45, strong=190) == (1.0, 1.0), seed


def test_transforms_move_masks_like_numpy():
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


def test_scale_crop_at_scale_one_is_a_plain_crop_and_pads_small_images():
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


def test_vanished_instances_have_empty_masks():
    image, masks = bright_squares()
    # a crop of the top-left corner keeps only square 0
    sample = A.Sample(image, InstanceLayers.from_masks(masks)).crop(0, 0, 40, 40)
    present = sample.instances.boxes()[1]
    np.testing.assert_array_equal(present, [True, False, False, False, False])


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


def test_kinds_and_wrapping():
    assert A.Compose([A.Brightness(), A.Fliplr()]).kind == A.DIHEDRAL
    assert A.Compose([A.Fliplr(), A.Sometimes(0.1, A.Rotate(5))]).kind == A.RESAMPLE
    assert A.Compose([A.Contrast()]).kind == A.PHOTOMETRIC
    assert A.as_augmenter(None) is None
    assert isinstance(A.as_augmenter([A.Fliplr()]), A.Compose)
    assert callable(A.as_augmenter(lambda image, masks, rng: (image, masks)).apply)
    with pytest.raises(TypeError, match="augmentation must be"):
        A.as_augmenter(42)
    with pytest.raises(ValueError, match="probability"):
        A.Fliplr(p=1.5)
    with pytest.raises(ValueError, match="low <= high"):
        A.RandomScale(scale=(2, 1))


class _Images(Dataset):
    def __init__(self, n):
        super().__init__()
        self.add_class("s", 1, "square")
        for i in range(n):
            self.add_image("s", image_id=i, path=None)


def test_add_flip_variants_enumerates_each_image_four_times():
    ds = A.add_flip_variants(_Images(2))
    flags = [(info["id"], info["vertical_flip"], info["horizontal_flip"])
             for info in ds.image_info]
    assert flags == [(0, False, False), (1, False, False), (0, False, True), (1, False, True),
                     (0, True, False), (1, True, False), (0, True, True), (1, True, True)]
    ds.prepare()
    with pytest.raises(ValueError, match="before dataset.prepare"):
        A.add_flip_variants(ds)
