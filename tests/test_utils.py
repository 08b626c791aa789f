"""Tests of mrcnn.utils: Matterport's names, each on a small hand-computed case.

Every name is used as ``utils.<name>`` (``from mrcnn import utils``), the way
Matterport's notebooks call them.
"""

import math
import time
import types

import numpy as np
import pytest

from mrcnn import utils

# Backend-independent: Matterport's mrcnn.utils names on NumPy cases; no Keras op.
pytestmark = pytest.mark.backend_independent

MATTERPORT_NAMES = [
    "Dataset", "extract_bboxes", "compute_iou", "compute_overlaps",
    "compute_overlaps_masks", "box_refinement", "apply_box_deltas",
    "non_max_suppression", "norm_boxes", "denorm_boxes",
    "compute_backbone_shapes", "generate_anchors", "generate_pyramid_anchors",
    "build_rpn_targets", "resize_image", "resize_mask", "mold_image",
    "unmold_image", "minimize_mask", "expand_mask", "unmold_mask",
    "paste_masks", "compose_image_meta", "parse_image_meta", "rle_encode",
    "rle_decode", "trim_zeros", "compute_matches", "compute_ap",
    "compute_ap_range", "compute_recall", "map_iou",
    "download_trained_weights",
]


def _rect_mask(shape, y1, x1, y2, x2):
    mask = np.zeros(shape, bool)
    mask[y1:y2, x1:x2] = True
    return mask


# ------------------------------------------------------------- the names


def test_all_names_exist_once():
    assert len(utils.__all__) == len(set(utils.__all__))
    for name in utils.__all__:
        assert hasattr(utils, name), name
    assert set(MATTERPORT_NAMES) <= set(utils.__all__)


# --------------------------------------------------------------- dataset


def test_dataset_registry(tmp_path):
    ds = utils.Dataset()
    ds.add_class("shapes", 1, "square")
    ds.add_class("shapes", 2, "circle, round")
    ds.add_image("shapes", image_id=10, path=None, width=8)
    ds.add_image("shapes", image_id=11, path=str(tmp_path / "a.png"))
    ds.prepare()
    assert ds.num_classes == 3
    assert ds.class_names == ["BG", "square", "circle"]
    np.testing.assert_array_equal(ds.class_ids, [0, 1, 2])
    assert ds.num_images == 2
    np.testing.assert_array_equal(ds.image_ids, [0, 1])
    assert ds.map_source_class_id("shapes.2") == 2
    assert ds.get_source_class_id(2, "shapes") == 2
    assert ds.image_from_source_map["shapes.11"] == 1
    assert ds.image_info[0]["width"] == 8
    assert ds.image_reference(0) == ""
    assert ds.source_class_ids["shapes"] == [0, 1, 2]
    with pytest.raises(ValueError, match="shapes.7"):
        ds.map_source_class_id("shapes.7")
    masks, class_ids = ds.load_mask(0)  # the base class has no masks
    assert masks.shape == (0, 0, 0) and class_ids.shape == (0,)

    import skimage.io
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    skimage.io.imsave(tmp_path / "a.png", gray, check_contrast=False)
    image = ds.load_image(1)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 1], gray)


# ----------------------------------------------------------------- boxes


def test_extract_bboxes_of_a_hand_drawn_mask():
    mask = np.zeros((5, 6, 3), bool)
    mask[1:3, 2:5, 0] = True        # rows 1-2, cols 2-4
    mask[2, 3, 0] = False           # a hole does not change the box
    mask[4, 0, 2] = True            # one pixel; instance 1 is empty
    boxes = utils.extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[1, 2, 3, 5], [0, 0, 0, 0],
                                          [4, 0, 5, 1]])


def test_compute_iou_by_hand():
    box = np.array([0, 0, 2, 2])
    boxes = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    areas = np.array([4, 4, 1])
    # Overlap 1 pixel of 4 + 4 - 1 = 7; identical; disjoint.
    np.testing.assert_allclose(utils.compute_iou(box, boxes, 4.0, areas),
                               [1 / 7, 1, 0], rtol=1e-6)


def test_compute_overlaps_by_hand():
    boxes1 = np.array([[0, 0, 2, 2], [0, 0, 4, 4]])
    boxes2 = np.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    np.testing.assert_allclose(utils.compute_overlaps(boxes1, boxes2),
                               [[1, 1 / 7], [4 / 16, 4 / 16]], rtol=1e-6)


def test_compute_overlaps_masks_by_hand():
    rows = _rect_mask((4, 4), 0, 0, 2, 4)     # 8 pixels
    column = _rect_mask((4, 4), 0, 0, 4, 1)   # 4 pixels, 2 shared
    empty = np.zeros((4, 4), bool)
    masks1 = np.stack([rows, empty], -1)
    masks2 = np.stack([column, rows, empty], -1)
    np.testing.assert_allclose(utils.compute_overlaps_masks(masks1, masks2),
                               [[2 / 10, 1, 0], [0, 0, 0]], rtol=1e-6)


def test_box_refinement_by_hand_and_apply_box_deltas_round_trip():
    box = np.array([[0, 0, 10, 10], [2, 4, 6, 12]], np.float32)
    gt = np.array([[5, 5, 15, 25], [1, 3, 9, 7]], np.float32)
    deltas = utils.box_refinement(box, gt)
    # Box 0: h = w = 10, centre (5, 5); gt h = 10, w = 20, centre (10, 15).
    np.testing.assert_allclose(deltas[0], [0.5, 1.0, 0.0, math.log(2)],
                               rtol=1e-6, atol=1e-7)
    # Box 1: h = 4, w = 8, centre (4, 8); gt h = 8, w = 4, centre (5, 5).
    np.testing.assert_allclose(
        deltas[1], [1 / 4, -3 / 8, math.log(2), math.log(0.5)], rtol=1e-6)
    np.testing.assert_allclose(utils.apply_box_deltas(box, deltas), gt,
                               rtol=1e-5, atol=1e-5)


def test_non_max_suppression_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30],
                      [0, 0, 10, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # Box 3 (best) overlaps box 0 at 90/100 and box 1 at 72/118: both go.
    np.testing.assert_array_equal(
        utils.non_max_suppression(boxes, scores, 0.5), [3, 2])
    np.testing.assert_array_equal(
        utils.non_max_suppression(boxes, scores, 0.5, max_output=1), [3])
    # At 0.95 nothing overlaps enough: all four, by score.
    np.testing.assert_array_equal(
        utils.non_max_suppression(boxes, scores, 0.95), [3, 0, 1, 2])


def test_norm_and_denorm_boxes_matterport_formula():
    shape = (11, 21)
    pixels = np.array([[0, 0, 11, 21], [5, 10, 6, 11], [2, 4, 7, 15]])
    normalized = utils.norm_boxes(pixels, shape)
    assert normalized.dtype == np.float32
    # (box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]
    np.testing.assert_allclose(
        normalized, [[0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5],
                     [0.2, 0.2, 0.6, 0.7]], rtol=1e-6)
    back = utils.denorm_boxes(normalized, shape)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, pixels)


# --------------------------------------------------------------- anchors


def test_compute_backbone_shapes():
    np.testing.assert_array_equal(
        utils.compute_backbone_shapes((64, 96, 3), [4, 8, 16, 32, 64]),
        [[16, 24], [8, 12], [4, 6], [2, 3], [1, 2]])


def test_generate_anchors_by_hand():
    anchors = utils.generate_anchors(8, [1, 4], (2, 3), 4, 1)
    assert anchors.shape == (12, 4)
    # Cell (0, 0): ratio 1 -> 8 x 8; ratio 4 -> h = 8 / 2, w = 8 * 2.
    np.testing.assert_allclose(anchors[0], [-4, -4, 4, 4])
    np.testing.assert_allclose(anchors[1], [-2, -8, 2, 8])
    # Cell (0, 1) is centred at (0, 4): rows first, then columns, then ratios.
    np.testing.assert_allclose(anchors[2], [-4, 0, 4, 8])
    # Last: cell (1, 2), centre (4, 8), ratio 4.
    np.testing.assert_allclose(anchors[11], [2, 0, 6, 16])
    strided = utils.generate_anchors(8, [1], (3, 3), 4, 2)
    centres = (strided[:, :2] + strided[:, 2:]) / 2
    np.testing.assert_allclose(centres, [[0, 0], [0, 8], [8, 0], [8, 8]])


def test_generate_pyramid_anchors_by_hand():
    anchors = utils.generate_pyramid_anchors((8, 16), [1], [[2, 2], [1, 1]],
                                             [4, 8], 1)
    np.testing.assert_allclose(anchors, [[-4, -4, 4, 4], [-4, 0, 4, 8],
                                         [0, -4, 8, 4], [0, 0, 8, 8],
                                         [-8, -8, 8, 8]])


def test_build_rpn_targets_by_hand():
    config = types.SimpleNamespace(RPN_TRAIN_ANCHORS_PER_IMAGE=4,
                                   RPN_BBOX_STD_DEV=np.array([0.1, 0.1, 0.2, 0.2]))
    anchors = np.array([[0, 0, 10, 10],       # IoU 90/110: positive
                        [0, 0, 10, 20],       # IoU 90/210: neutral
                        [50, 50, 60, 60],     # IoU 0: negative
                        [100, 100, 110, 110]], np.float32)
    gt_boxes = np.array([[1, 0, 11, 10]])
    match, bbox = utils.build_rpn_targets((128, 128, 3), anchors,
                                          np.array([1]), gt_boxes, config,
                                          rng=0)
    np.testing.assert_array_equal(match, [1, 0, -1, -1])
    assert bbox.shape == (4, 4)
    # dy = (6 - 5) / 10 = 0.1, divided by 0.1; the other rows are zero.
    np.testing.assert_allclose(bbox, [[1, 0, 0, 0], [0, 0, 0, 0],
                                      [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)


# ---------------------------------------------------------------- images


def test_resize_image_square_pads_by_hand():
    image = np.full((20, 40, 3), 7, np.uint8)
    # min_dim 16 < 20: no upscaling; 40 <= 64: no downscaling; pad to 64.
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=16, max_dim=64, mode="square")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert tuple(window) == (22, 12, 42, 52)
    assert scale == 1
    assert [tuple(p) for p in padding] == [(22, 22), (12, 12), (0, 0)]
    assert crop is None
    assert np.all(out[22:42, 12:52] == 7)
    assert out.sum() == 7 * 20 * 40 * 3


def test_resize_image_square_scales_down_and_resize_mask_follows():
    image = np.full((40, 100, 3), 9, np.uint8)
    # The long side 100 > max_dim 50: scale 0.5 -> 20 x 50, padded 15 + 15.
    out, window, scale, padding, _ = utils.resize_image(
        image, min_dim=32, max_dim=50, mode="square")
    assert out.shape == (50, 50, 3)
    assert tuple(window) == (15, 0, 35, 50)
    assert scale == pytest.approx(0.5)
    assert [tuple(p) for p in padding] == [(15, 15), (0, 0), (0, 0)]
    assert np.all(out[15:35] == 9) and np.all(out[:15] == 0)
    mask = _rect_mask((40, 100, 1), 0, 0, 20, 100)  # top half
    resized = utils.resize_mask(mask, scale, padding)
    assert resized.shape == (50, 50, 1) and resized.dtype == bool
    np.testing.assert_array_equal(resized, _rect_mask((50, 50, 1), 15, 0, 25, 50))


def test_mold_and_unmold_image():
    config = types.SimpleNamespace(MEAN_PIXEL=np.array([10.0, 20.0, 30.0]))
    image = np.array([[[5, 25, 255]]], np.uint8)
    molded = utils.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_array_equal(molded, [[[-5, 5, 225]]])
    np.testing.assert_array_equal(utils.unmold_image(molded, config), image)
    # Clipped to 0..255.
    np.testing.assert_array_equal(
        utils.unmold_image(np.array([[[-20.0, 250.0, 0.0]]]), config),
        [[[0, 255, 30]]])


# ----------------------------------------------------------------- masks


def test_minimize_and_expand_mask_of_a_rectangle():
    mask = _rect_mask((10, 10, 1), 2, 3, 6, 9)
    bbox = utils.extract_bboxes(mask)
    np.testing.assert_array_equal(bbox, [[2, 3, 6, 9]])
    for mini_shape in ((4, 6), (8, 12), (28, 28)):
        mini = utils.minimize_mask(bbox, mask, mini_shape)
        assert mini.shape == mini_shape + (1,) and mini.dtype == bool
        assert np.all(mini)
        np.testing.assert_array_equal(utils.expand_mask(bbox, mini, (10, 10, 3)),
                                      mask)


def test_minimize_and_expand_a_half_mask_by_hand():
    mask = _rect_mask((4, 4, 1), 0, 0, 4, 2)   # left half of its 4x4 box
    mini = utils.minimize_mask(np.array([[0, 0, 4, 4]]), mask, (2, 2))
    # Mini pixel j samples column (j + 0.5) * 2 - 0.5 = 0.5 (1.0) or 2.5 (0.0).
    np.testing.assert_array_equal(mini[..., 0], [[1, 0], [1, 0]])
    full = utils.expand_mask(np.array([[0, 0, 4, 4]]), mini, (4, 4))
    # Back: columns sample 0, 0.25, 0.75, 1 -> 1, 0.75, 0.25, 0.
    np.testing.assert_array_equal(full, mask)


def test_unmold_mask_and_paste_masks_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1]], np.float32)
    expected = _rect_mask((6, 6), 1, 1, 5, 3)
    got = utils.unmold_mask(probs, (1, 1, 5, 5), (6, 6, 3))
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)
    pasted = utils.paste_masks(probs[None], np.array([[1, 1, 5, 5]]), (6, 6))
    np.testing.assert_array_equal(pasted[..., 0], expected)


# ------------------------------------------------------------ image meta


def test_compose_and_parse_image_meta():
    meta = utils.compose_image_meta(7, (30, 60, 3), (64, 64, 3),
                                    (16, 0, 48, 64), 1.5, [1, 1, 0])
    assert meta.dtype == np.float32 and meta.shape == (15,)
    np.testing.assert_array_equal(
        meta, [7, 30, 60, 3, 64, 64, 3, 16, 0, 48, 64, 1.5, 1, 1, 0])
    parts = utils.parse_image_meta(meta)
    assert parts["image_id"] == 7
    np.testing.assert_array_equal(parts["original_image_shape"], [30, 60, 3])
    np.testing.assert_array_equal(parts["image_shape"], [64, 64, 3])
    np.testing.assert_array_equal(parts["window"], [16, 0, 48, 64])
    assert parts["scale"] == pytest.approx(1.5)
    np.testing.assert_array_equal(parts["active_class_ids"], [1, 1, 0])
    batch = utils.parse_image_meta(np.stack([meta, meta]))
    np.testing.assert_array_equal(batch["window"], [[16, 0, 48, 64]] * 2)


# ------------------------------------------------------------------- rle


def test_rle_encode_and_decode_a_3x3_mask():
    mask = np.array([[0, 1, 1],
                     [1, 0, 0],
                     [0, 0, 1]], bool)
    # Row by row: 0 1 1 | 1 0 0 | 0 0 1 -> pixels 2-4 and 9 (1-indexed).
    assert utils.rle_encode(mask) == "2 3 9 1"
    # Column by column: 0 1 0 | 1 0 0 | 1 0 1 -> pixels 2, 4, 7, 9.
    assert utils.rle_encode(mask, order="F") == "2 1 4 1 7 1 9 1"
    np.testing.assert_array_equal(utils.rle_decode("2 3 9 1", (3, 3)), mask)
    np.testing.assert_array_equal(
        utils.rle_decode("2 1 4 1 7 1 9 1", (3, 3), order="F"), mask)
    assert utils.rle_encode(np.zeros((3, 3), bool)) == ""


# ------------------------------------------------------------ evaluation


def test_trim_zeros():
    x = np.array([[0, 0], [1, 0], [0, 0], [0, 2]])
    np.testing.assert_array_equal(utils.trim_zeros(x), [[1, 0], [0, 2]])


def _two_instances():
    masks = np.stack([_rect_mask((10, 10), 0, 0, 4, 4),
                      _rect_mask((10, 10), 5, 5, 10, 10)], -1)
    return utils.extract_bboxes(masks), np.array([1, 2]), masks


def test_compute_matches_and_ap_of_two_matching_instances():
    boxes, class_ids, masks = _two_instances()
    # Predictions in the opposite order, lower score first.
    pred = (boxes[::-1], class_ids[::-1], np.array([0.8, 0.9]), masks[..., ::-1])
    gt_match, pred_match, overlaps = utils.compute_matches(
        boxes, class_ids, masks, pred[0], pred[1], pred[2], pred[3])
    # Score order: prediction 1 (gt 0) first, then prediction 0 (gt 1).
    np.testing.assert_array_equal(pred_match, [0, 1])
    np.testing.assert_array_equal(gt_match, [0, 1])
    np.testing.assert_allclose(overlaps, [[1, 0], [0, 1]])
    ap, precisions, recalls, _ = utils.compute_ap(
        boxes, class_ids, masks, *pred)
    assert ap == 1.0
    np.testing.assert_allclose(precisions, [1, 1, 1, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])


def test_compute_ap_with_one_false_positive_by_hand():
    boxes, class_ids, masks = _two_instances()
    # The top prediction finds gt 0; the second has the wrong class.
    ap, precisions, recalls, _ = utils.compute_ap(
        boxes, class_ids, masks, boxes, np.array([1, 1]), np.array([0.9, 0.8]),
        masks)
    # precision 1, 1/2 at recall 1/2, 1/2 -> AP = 0.5 * 1 + 0.5 * 0.
    assert ap == pytest.approx(0.5)
    np.testing.assert_allclose(precisions, [1, 1, 0.5, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1])


def test_compute_ap_range_by_hand():
    gt = _rect_mask((10, 10, 1), 0, 0, 10, 10)          # 100 pixels
    pred = _rect_mask((10, 10, 1), 0, 0, 10, 8)          # 80 pixels
    pred[0, :2, 0] = False                               # 78: IoU 0.78
    box = np.array([[0, 0, 10, 10]])
    # AP 1 at 0.50, 0.55, ..., 0.75 (6 of 10 thresholds), 0 above.
    ap = utils.compute_ap_range(box, np.array([1]), gt, box, np.array([1]),
                                np.array([0.9]), pred, verbose=0)
    assert ap == pytest.approx(0.6)
    assert utils.compute_ap_range(box, np.array([1]), gt, box, np.array([1]),
                                  np.array([0.9]), gt, verbose=0) == 1.0


def test_compute_recall_by_hand():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    preds = np.array([[0, 0, 10, 10], [21, 21, 31, 31], [50, 50, 60, 60]])
    # IoUs with the best gt: 1, 81 / 119, 0.
    recall, positive = utils.compute_recall(preds, gt, 0.5)
    assert recall == 1.0
    np.testing.assert_array_equal(positive, [0, 1])
    recall, positive = utils.compute_recall(preds, gt, 0.7)
    assert recall == 0.5
    np.testing.assert_array_equal(positive, [0])


def test_map_iou_by_hand():
    _, _, masks = _two_instances()
    assert utils.map_iou(masks, masks) == 1.0
    # One exact match, one miss: TP 1, FP 1, FN 1 at every threshold.
    miss = np.stack([masks[..., 0], _rect_mask((10, 10), 0, 6, 3, 10)], -1)
    assert utils.map_iou(masks, miss) == pytest.approx(1 / 3)
    labels = masks[..., 0] * 1 + masks[..., 1] * 2
    assert utils.map_iou(labels, masks) == 1.0
    assert utils.map_iou(np.zeros((10, 10, 0), bool), masks) == 0.0


# --------------------------------------------------------------- weights


def test_download_trained_weights_fails_fast_without_network(tmp_path):
    path = tmp_path / "mask_rcnn_coco.h5"
    start = time.monotonic()
    with pytest.raises(OSError, match="127.0.0.1:9"):
        utils.download_trained_weights(str(path), verbose=0,
                                       url="http://127.0.0.1:9/x")
    assert time.monotonic() - start < 10
    assert not path.exists()
