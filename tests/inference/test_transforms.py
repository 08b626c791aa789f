"""Tests for mrcnn/inference/transforms.py: each TTA transform and its inverse on hand-made results."""

import numpy as np
import pytest
import skimage.transform
from result_helpers import loop_boxes, make_result, random_discs

from mrcnn.data.masks import SparseMasks
from mrcnn.inference import compact, expand
from mrcnn.inference.transforms import Transform

# Backend-independent: TTA transforms and inverses on hand-made NumPy results; no model.
pytestmark = pytest.mark.backend_independent

DIHEDRAL = ("none", "lr", "ud", "lrud", "rot90", "rot180", "rot270", "lr-rot90", "ud-rot270")


def _result(shape=(30, 45), n=6, seed=0):
    rng = np.random.default_rng(seed)
    masks = random_discs(rng, shape=shape, n=n)
    soft = masks * rng.uniform(0.3, 1.0, masks.shape).astype(np.float32)
    return make_result(masks, rng.random(n), class_ids=rng.integers(1, 4, n), soft=soft)


def _numpy_transform(array, name):
    """Reference: the transform of an [H, W, ...] array with np.flip / np.rot90."""
    t = Transform.parse(name)
    if "lr" in t.flip:
        array = array[:, ::-1]
    if "ud" in t.flip:
        array = array[::-1]
    return np.rot90(array, t.rot90, axes=(0, 1))


@pytest.mark.parametrize("shape", [(30, 45), (40, 40)])
@pytest.mark.parametrize("name", DIHEDRAL)
def test_flips_and_turns_move_masks_soft_masks_and_boxes_exactly(name, shape):
    r = _result(shape)
    t = Transform.parse(name)
    moved = t.result(r, shape)
    np.testing.assert_array_equal(moved["masks"], _numpy_transform(r["masks"], name))
    np.testing.assert_array_equal(moved["soft_masks"], _numpy_transform(r["soft_masks"], name))
    # rois were the masks' boxes: they still are (moved exactly, not recomputed)
    np.testing.assert_array_equal(moved["rois"], loop_boxes(moved["masks"]))
    assert t.shape(shape) == moved["masks"].shape[:2]
    image = np.arange(np.prod(shape) * 3, dtype=np.uint16).reshape(shape + (3,))
    np.testing.assert_array_equal(t.image(image), _numpy_transform(image, name))
    back = t.invert(moved, shape)                     # and back: the original, bit for bit
    for key in ("rois", "class_ids", "scores", "masks", "soft_masks"):
        np.testing.assert_array_equal(back[key], r[key])


def test_inverse_on_sparse_results_keeps_the_sparse_form():
    r = compact(_result((24, 50)))
    t = Transform.parse("lr-rot270")
    moved = t.result(r, (24, 50))
    assert isinstance(moved["masks"], SparseMasks) and moved["masks"].shape == (50, 24)
    back = t.invert(moved, (24, 50))
    assert isinstance(back["soft_masks"], SparseMasks)
    dense, dense_back = expand(r), expand(back)
    for key in ("rois", "masks", "soft_masks"):
        np.testing.assert_array_equal(dense_back[key], dense[key])


def test_a_box_that_is_not_the_mask_box_turns_with_the_image():
    masks = np.zeros((6, 10, 1), bool)
    masks[1:3, 2:5, 0] = True
    r = make_result(masks, [0.5])
    r["rois"] = np.array([[0, 1, 4, 7]])             # a detection box, larger than its mask
    turned = Transform(rot90=1).result(r, (6, 10))   # rows [10 - 7, 10 - 1), cols [0, 4)
    np.testing.assert_array_equal(turned["rois"], [[3, 0, 9, 4]])
    box = np.zeros((6, 10), bool)
    box[0:4, 1:7] = True
    np.testing.assert_array_equal(loop_boxes(np.rot90(box)[..., None]), turned["rois"])


@pytest.mark.parametrize("scale", [1.25, 0.8, (1.5, 0.7)])
def test_scale_resamples_masks_as_skimage_resizes_the_whole_frame(scale):
    r = _result((30, 45), n=8, seed=1)
    t = Transform(scale=scale)
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    shape = (int(round(30 * sy)), int(round(45 * sx)))
    assert t.shape((30, 45)) == shape
    moved = t.result(r, (30, 45))

    def resize(a):
        return skimage.transform.resize(a.astype(np.float64), shape + a.shape[2:], order=1,
                                        mode="edge", anti_aliasing=False)

    np.testing.assert_allclose(moved["soft_masks"], resize(r["soft_masks"]), atol=1e-6)
    reference = resize(r["masks"])
    clear = np.abs(reference - 0.5) > 1e-6          # float ties at exactly 0.5 may go either way
    np.testing.assert_array_equal(moved["masks"][clear], reference[clear] >= 0.5)
    # box edges scale by new / old size and are rounded
    factor = np.array([shape[0] / 30, shape[1] / 45] * 2)
    np.testing.assert_array_equal(moved["rois"], np.round(r["rois"] * factor))
    image = (np.random.default_rng(0).random((30, 45, 3)) * 255).astype(np.uint8)
    expected = np.rint(skimage.transform.resize(image.astype(float), shape + (3,), order=1,
                                                mode="edge", anti_aliasing=False))
    np.testing.assert_array_equal(t.image(image), expected.astype(np.uint8))


def test_scale_by_two_and_back_is_exact_for_binary_masks():
    # Bilinear x2 of a 0/1 mask thresholded at 0.5 replicates each pixel (weight
    # 9/16 on the nearest one), and /2 averages the 2x2 blocks back.
    r = _result((21, 33), n=7, seed=2)
    for name in ("s2", "rot90-s2", "lr-rot270-s2"):
        t = Transform.parse(name)
        moved = t.result(r, (21, 33))
        assert moved["masks"].shape[:2] == t.shape((21, 33))
        np.testing.assert_array_equal(
            moved["masks"], np.kron(_numpy_transform(r["masks"], name),
                                    np.ones((2, 2, 1))).astype(bool))
        back = t.invert(moved, (21, 33))
        np.testing.assert_array_equal(back["masks"], r["masks"])
        np.testing.assert_array_equal(back["rois"], r["rois"])
        np.testing.assert_array_equal(back["rois"], loop_boxes(back["masks"]))


def test_names_parse_and_print_back():
    assert Transform.parse("none") == Transform()
    assert Transform.parse("lr-rot90-s1.25") == Transform("lr", 1, 1.25)
    assert Transform.parse("rot270-ud") == Transform("ud", 3)
    assert Transform.parse("s1.2x0.9").scale == (1.2, 0.9)
    for name in ("none", "lr", "rot180", "lrud-rot90", "s0.8", "ud-rot270-s1.2x0.9"):
        assert Transform.parse(name).name == name
    with pytest.raises(ValueError, match=r"'lr-rot45' has an unknown part 'rot45'"):
        Transform.parse("lr-rot45")
    with pytest.raises(ValueError, match=r"'lr-ud' repeats a part"):
        Transform.parse("lr-ud")
    with pytest.raises(ValueError, match=r"rot90 must be 0, 1, 2 or 3 quarter turns, got 4"):
        Transform(rot90=4)
    with pytest.raises(ValueError, match=r"scale must be a positive number or \(sy, sx\), "
                                         r"got -1"):
        Transform(scale=-1)
    with pytest.raises(ValueError, match="flip must be one of"):
        Transform(flip="diag")
    with pytest.raises(ValueError, match=r"makes a 3x3 image 0x0: no pixel left"):
        Transform(scale=0.1).shape((3, 3))
    with pytest.raises(ValueError, match=r"the result's masks are 30x45, the image "
                                         r"transformed by 'rot90' is 45x30"):
        Transform(rot90=1).invert(_result((30, 45)), (30, 45))
