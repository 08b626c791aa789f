import numpy as np
import pytest

from mrcnn.data.boxes import extract_bboxes
from mrcnn.data.masks import BoxMasks, InstanceLayers
from mrcnn.data.masks import minimize_mask

# Backend-independent: NumPy instance mask containers; no Keras op.
pytestmark = pytest.mark.backend_independent


def random_masks(rng, height=70, width=90, count=12, density=0.8):
    """Overlapping random blobs in random boxes, plus one empty instance."""
    masks = np.zeros((height, width, count + 1), bool)
    for k in range(count):
        y, x = rng.integers(0, height - 2), rng.integers(0, width - 2)
        h, w = rng.integers(1, 35, size=2)
        region = masks[y:y + h, x:x + w, k]
        region[...] = rng.random(region.shape) < density
        region[0, 0] = True
    return masks


def test_layers_round_trip_is_exact_with_overlaps():
    rng = np.random.default_rng(0)
    masks = random_masks(rng)
    layers = InstanceLayers.from_masks(masks)
    assert layers.count == masks.shape[2]
    assert layers.layers.dtype == np.uint16
    np.testing.assert_array_equal(layers.to_masks(), masks)
    np.testing.assert_array_equal(layers.to_masks([3, 1]), masks[:, :, [3, 1]])
    # the blobs overlap, so more than one layer is needed
    assert (masks.sum(axis=2) > 1).any() and layers.layers.shape[2] > 1


def test_first_fit_layering_hand_case():
    masks = np.zeros((4, 6, 3), bool)
    masks[0:2, 0:3, 0] = True       # A
    masks[1:3, 2:4, 1] = True       # B overlaps A at (1, 2)
    masks[0:2, 4:6, 2] = True       # C overlaps nothing -> first layer
    layers = InstanceLayers.from_masks(masks)
    np.testing.assert_array_equal(layers.layer_of, [0, 1, 0])
    np.testing.assert_array_equal(layers.layers[:, :, 0], [
        [1, 1, 1, 0, 3, 3],
        [1, 1, 1, 0, 3, 3],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(layers.layers[1:3, 2:4, 1], [[2, 2], [2, 2]])


def test_boxes_match_extract_bboxes():
    rng = np.random.default_rng(1)
    masks = random_masks(rng)
    boxes, present = InstanceLayers.from_masks(masks).boxes()
    np.testing.assert_array_equal(boxes, extract_bboxes(masks))
    np.testing.assert_array_equal(present, masks.any(axis=(0, 1)))
    assert not present[-1]


@pytest.mark.parametrize("mini_shape", [(28, 28), (56, 56), (17, 23), (8, 5)])
def test_minimize_is_bit_identical_to_minimize_mask(mini_shape):
    rng = np.random.default_rng(2)
    masks = random_masks(rng, count=20)
    layers = InstanceLayers.from_masks(masks)
    boxes = extract_bboxes(masks)
    # include out-of-image and zero-area boxes, and a subset of instances
    boxes[0] = [-5, -3, 10, 12]
    boxes[1] = [4, 4, 4, 9]
    ids = np.array([0, 1, 2, 5, 7, 19, 20])
    ours = layers.minimize(ids, boxes[ids], mini_shape)
    reference = minimize_mask(boxes[ids], masks[:, :, ids], mini_shape)
    assert ours.shape == mini_shape + (len(ids),)
    np.testing.assert_array_equal(ours, reference)


def test_minimize_of_tall_instances_uses_small_chunks():
    # one instance spanning all 300 rows, mini masks 112 wide: exercises the
    # memory-bounded chunking and the downsampling regime
    masks = np.zeros((300, 40, 3), bool)
    masks[:, 5:9, 0] = True
    masks[10:20, 10:30, 1] = True
    masks[100:290:3, 0:40, 2] = True
    layers = InstanceLayers.from_masks(masks)
    boxes = extract_bboxes(masks)
    np.testing.assert_array_equal(layers.minimize(np.arange(3), boxes, (112, 112)),
                                  minimize_mask(boxes, masks, (112, 112)))


def test_geometry_matches_numpy_on_masks():
    rng = np.random.default_rng(3)
    masks = random_masks(rng)
    layers = InstanceLayers.from_masks(masks)
    np.testing.assert_array_equal(layers.flip(0).to_masks(), masks[::-1])
    np.testing.assert_array_equal(layers.flip(1).to_masks(), masks[:, ::-1])
    np.testing.assert_array_equal(layers.transpose().to_masks(), masks.transpose(1, 0, 2))
    np.testing.assert_array_equal(layers.crop(5, 7, 30, 40).to_masks(), masks[5:35, 7:47])
    padded = layers.pad(1, 2, 3, 4).to_masks()
    np.testing.assert_array_equal(padded, np.pad(masks, [(1, 2), (3, 4), (0, 0)]))
    # identity warp and an integer shift (nearest neighbour: exact)
    same = layers.warp(np.eye(2), [0, 0], masks.shape[:2]).to_masks()
    np.testing.assert_array_equal(same, masks)
    shifted = layers.warp(np.eye(2), [2, -3], masks.shape[:2]).to_masks()
    expected = np.zeros_like(masks)
    expected[:-2, 3:] = masks[2:, :-3]
    np.testing.assert_array_equal(shifted, expected)


def test_box_masks_flip_transpose_pad_follow_the_layers():
    rng = np.random.default_rng(4)
    masks = random_masks(rng, 64, 80, count=15, density=1.0)
    layers = InstanceLayers.from_masks(masks)
    boxes, present = layers.boxes()
    ids = np.flatnonzero(present)
    shape = (28, 28)
    box_masks = BoxMasks(boxes[ids], layers.minimize(ids, boxes[ids], shape), layers.shape)
    for name, ours, theirs in [
            ("flip0", box_masks.flip(0), layers.flip(0)),
            ("flip1", box_masks.flip(1), layers.flip(1)),
            ("transpose", box_masks.transpose(), layers.transpose()),
            ("pad", box_masks.pad(3, 1, 5, 2), layers.pad(3, 1, 5, 2))]:
        ref_boxes = theirs.boxes()[0][ids]
        np.testing.assert_array_equal(ours.boxes, ref_boxes, err_msg=name)
        assert ours.shape == theirs.shape, name
        reference = theirs.minimize(ids, ref_boxes, shape)
        # equal up to rare exact-0.5 ties of the bilinear threshold
        assert (ours.masks == reference).mean() > 0.995, name
    # flipping the boxes of a 80-wide frame by hand
    y1, x1, y2, x2 = box_masks.boxes[0]
    np.testing.assert_array_equal(box_masks.flip(1).boxes[0], [y1, 80 - x2, y2, 80 - x1])


def test_box_masks_reject_resampling_and_non_square_transpose():
    box_masks = BoxMasks(np.array([[0, 0, 4, 4]]), np.ones((8, 6, 1), bool), (10, 10))
    with pytest.raises(ValueError, match="square MINI_MASK_SHAPE"):
        box_masks.transpose()
    with pytest.raises(ValueError, match="InstanceLayers"):
        box_masks.crop(0, 0, 5, 5)


def test_invalid_inputs():
    with pytest.raises(ValueError, match=r"\[H, W, N\]"):
        InstanceLayers.from_masks(np.zeros((4, 4), bool))
    with pytest.raises(TypeError, match="uint16 or uint32"):
        InstanceLayers(np.zeros((4, 4, 1), np.int32), [])
    with pytest.raises(ValueError, match="layer_of must index"):
        InstanceLayers(np.zeros((4, 4, 1), np.uint16), [0, 1])
