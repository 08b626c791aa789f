import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.dataset import Dataset

# Backend-independent: NumPy augmentation presets; no Keras op.
pytestmark = pytest.mark.backend_independent

GEOMETRY_ONLY = dict(brightness=0, contrast=None, channel_shift=0)
RESAMPLING = [A.cell_augmentation(crop_size=64, **GEOMETRY_ONLY),
              A.cell_augmentation(**GEOMETRY_ONLY), A.geometric_augmentation()]


@pytest.mark.parametrize("augmenter", RESAMPLING, ids=repr)
def test_resampling_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                                assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter, resampling=True)


def test_cell_augmentation_lists_seed_002_steps():
    steps = [type(a).__name__ for a in A.cell_augmentation(crop_size=64).augmenters]
    assert steps == ["ScaleCrop", "Fliplr", "Flipud", "Rot90", "Sometimes", "Brightness",
                     "Contrast", "ChannelShift"]
    assert A.cell_augmentation(crop_size=64).augmenters[3].ks == (0, 1, 2, 3)
    # without a square crop, 90-degree turns would swap height and width
    assert A.cell_augmentation(crop_size=(64, 96)).augmenters[3].ks == (0, 2)
    assert A.cell_augmentation().augmenters[2].ks == (0, 2)
    plain = A.cell_augmentation(max_degrees=0, **GEOMETRY_ONLY)
    assert [type(a).__name__ for a in plain.augmenters] == ["Fliplr", "Flipud", "Rot90"]


def test_geometric_augmentation_scales_turns_and_rotates_by_any_angle():
    aug = A.geometric_augmentation()
    assert [type(a).__name__ for a in aug.augmenters] == ["RandomScale", "Fliplr", "Flipud",
                                                         "Rot90", "Rotate"]
    assert aug.augmenters[0].scale == (0.75, 1.33) and aug.augmenters[0].aspect == (1.0, 1.0)
    assert aug.augmenters[3].ks == (0, 1, 2, 3) and aug.augmenters[4].max_degrees == 180.0
    assert A.geometric_augmentation(quarter_turns=False).augmenters[3].ks == (0, 2)
    bare = A.geometric_augmentation(scale=None, max_degrees=0)
    assert [type(a).__name__ for a in bare.augmenters] == ["Fliplr", "Flipud", "Rot90"]


def test_geometric_augmentation_draws_sizes_in_its_scale_range(bright_squares):
    image, masks = bright_squares()
    sizes = set()
    for seed in range(40):
        out, out_masks = A.geometric_augmentation(max_degrees=0)(
            image, masks, np.random.default_rng(seed))
        assert out_masks.shape[:2] == out.shape[:2]
        sizes.add(out.shape[:2])
        # 120 x 128 scaled by s in [0.75, 1.33] (then maybe turned: H and W swap)
        assert 0.75 * 120 - 1 <= min(out.shape[:2]) and max(out.shape[:2]) <= 1.33 * 128 + 1
    assert len(sizes) > 10          # a new scale per sample


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
    assert A.FLIP_KEYS == ("vertical_flip", "horizontal_flip")
    ds.prepare()
    with pytest.raises(ValueError, match="before dataset.prepare"):
        A.add_flip_variants(ds)
