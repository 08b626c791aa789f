"""mrcnn.ops.boxes (keras.ops) vs plain NumPy loops and hand-computed cases."""

import numpy as np
import pytest

import keras
from keras import ops

from mrcnn.ops.boxes import (
    apply_box_deltas_graph,
    box_area_graph,
    overlaps_graph,
    box_refinement_graph,
    clip_boxes_graph,
    denorm_boxes_graph,
    norm_boxes_graph,
    scale_boxes_graph,
)


def np_(x):
    return ops.convert_to_numpy(x)


def random_boxes(rng, shape, scale=50.0):
    yx = rng.uniform(0, scale, size=shape + (2,))
    hw = rng.uniform(0.5, scale / 2, size=shape + (2,))
    return np.concatenate([yx, yx + hw], axis=-1).astype(np.float32)


def ref_iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(
        0.0, min(a[3], b[3]) - max(a[1], b[1])
    )
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_refinement(box, gt):
    h, w = box[2] - box[0], box[3] - box[1]
    gh, gw = gt[2] - gt[0], gt[3] - gt[1]
    return [
        (gt[0] + 0.5 * gh - box[0] - 0.5 * h) / h,
        (gt[1] + 0.5 * gw - box[1] - 0.5 * w) / w,
        np.log(gh / h),
        np.log(gw / w),
    ]


def test_box_refinement_hand_case():
    # box centre (5, 5) size 10x10; gt centre (7, 4) size 20x5.
    got = np_(box_refinement_graph([[0.0, 0.0, 10.0, 10.0]], [[-3.0, 1.5, 17.0, 6.5]]))
    np.testing.assert_allclose(got, [[0.2, -0.1, np.log(2.0), np.log(0.5)]], rtol=1e-6)


def test_box_refinement_matches_loop_and_inverts_apply():
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, (2, 30))
    gt = random_boxes(rng, (2, 30))
    got = np_(box_refinement_graph(boxes, gt))
    want = np.array(
        [[ref_refinement(boxes[b, n], gt[b, n]) for n in range(30)] for b in range(2)]
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np_(apply_box_deltas_graph(boxes, got)), gt, rtol=1e-5, atol=1e-4)


def test_box_refinement_padding_rows_are_zero_not_nan():
    boxes = np.array([[0, 0, 0, 0], [1, 1, 5, 5], [1, 1, 5, 5]], np.float32)
    gt = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [2, 2, 6, 6]], np.float32)
    got = np_(box_refinement_graph(boxes, gt))
    np.testing.assert_array_equal(got[:2], 0.0)
    np.testing.assert_allclose(got[2], [0.25, 0.25, 0.0, 0.0], atol=1e-7)


def test_apply_box_deltas_hand_case():
    # centre (5, 10), size (10, 20); shift by (0.1 h, -0.5 w), scale (e, 1).
    deltas = np.array([[0.1, -0.5, 1.0, 0.0]], np.float32)
    got = np_(apply_box_deltas_graph(np.array([[0.0, 0.0, 10.0, 20.0]]), deltas))
    h = 10 * np.e
    np.testing.assert_allclose(got, [[6 - h / 2, -10, 6 + h / 2, 10]], rtol=1e-6)


def test_clip_boxes_scalar_window_and_broadcast():
    boxes = np.array([[-5, 2, 30, 8], [1, -1, 2, 40], [50, 50, 60, 60]], np.float32)
    got = np_(clip_boxes_graph(boxes, [0, 0, 20, 10]))
    np.testing.assert_array_equal(got, [[0, 2, 20, 8], [1, 0, 2, 10], [20, 10, 20, 10]])
    # Per-image windows [B, 1, 4] against boxes [B, N, 4].
    windows = np.array([[[0, 0, 20, 10]], [[5, 5, 6, 6]]], np.float32)
    got = np_(clip_boxes_graph(np.stack([boxes, boxes]), windows))
    want = np.stack(
        [np.clip(boxes, [w[0], w[1], w[0], w[1]], [w[2], w[3], w[2], w[3]])
         for w in windows[:, 0]]
    )
    np.testing.assert_array_equal(got, want)


def test_box_overlaps_matches_loop_with_leading_dims():
    rng = np.random.default_rng(1)
    b1 = random_boxes(rng, (3, 7))
    b2 = random_boxes(rng, (3, 5))
    b2[:, 0] = 0.0  # padding boxes
    b1[0, 0] = b1[0, 1]  # a duplicate -> IoU 1 with itself
    got = np_(overlaps_graph(b1, b2))
    want = np.array(
        [[[ref_iou(b1[b, i], b2[b, j]) for j in range(5)] for i in range(7)] for b in range(3)]
    )
    assert got.shape == (3, 7, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(np_(overlaps_graph(b1[0], b1[0]))[0, 1], 1.0)


def test_box_overlaps_hand_case_and_all_padding():
    got = np_(overlaps_graph([[0.0, 0.0, 2.0, 2.0]], [[1.0, 1.0, 3.0, 3.0], [2, 2, 4, 4]]))
    np.testing.assert_allclose(got, [[1.0 / 7.0, 0.0]], rtol=1e-6)
    zeros = np.zeros((4, 4), np.float32)
    got = np_(overlaps_graph(zeros, zeros))
    np.testing.assert_array_equal(got, 0.0)


def test_box_overlaps_has_finite_gradient_on_padding():
    if keras.backend.backend() != "jax":
        pytest.skip("gradient check uses jax.grad")
    import jax

    zeros = np.zeros((2, 4), np.float32)
    grad = jax.grad(lambda b: ops.sum(overlaps_graph(b, zeros)))(zeros)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_box_area():
    got = np_(box_area_graph([[0, 0, 2, 3], [5, 5, 5, 9], [4, 4, 2, 2]]))
    np.testing.assert_array_equal(got, [6.0, 0.0, 0.0])


def test_scale_boxes_hand_case_padding_and_numpy():
    from mrcnn.data.boxes import scale_boxes
    boxes = np.array([[[10, 20, 30, 60], [0, 0, 0, 0]]], np.float32)    # [1, 2, 4]
    got = np_(scale_boxes_graph(boxes, 1.5))
    # centre (20, 40), 20 x 40 -> 30 x 60; the zero padding row stays zero
    np.testing.assert_allclose(got, [[[5, 10, 35, 70], [0, 0, 0, 0]]])
    np.testing.assert_allclose(np_(scale_boxes_graph(boxes, 1.0)), boxes)
    rng = np.random.default_rng(3)
    many = random_boxes(rng, (40,))
    for factor in (0.8, 1.0, 1.25, 2.0):
        graph = np_(scale_boxes_graph(many, factor))
        np.testing.assert_allclose(graph, scale_boxes(many, factor), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(graph[:, 2:] - graph[:, :2],
                                   (many[:, 2:] - many[:, :2]) * factor, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(graph[:, 2:] + graph[:, :2], many[:, 2:] + many[:, :2],
                                   rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="factor must be a finite number > 0, got 0.0"):
        scale_boxes(many, 0.0)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_norm_denorm_conventions(as_tensor):
    # Matterport: a mask covering rows 2..4 has pixel box y1=2, y2=5.
    pixel = np.array([[2, 3, 5, 9], [0, 0, 64, 128]], np.float32)
    shape = (64, 128)
    if as_tensor:
        shape = ops.convert_to_tensor(np.array([64, 128, 3], np.int32))
    norm = np_(norm_boxes_graph(pixel, shape))
    want = (pixel - [0, 0, 1, 1]) / [63, 127, 63, 127]
    np.testing.assert_allclose(norm, want, rtol=1e-6)
    np.testing.assert_allclose(norm[1], [0, 0, 1, 1])
    back = denorm_boxes_graph(norm, shape)
    assert "float" in str(back.dtype)
    np.testing.assert_array_equal(np_(back), pixel)
    # Rounding to the nearest pixel.
    np.testing.assert_array_equal(
        np_(denorm_boxes_graph([[0.5 / 63 + 0.001, 0.0, 1.0, 0.4 / 127]], (64, 128))),
        [[1.0, 0.0, 64.0, 1.0]],
    )


def test_integer_inputs_become_float32():
    got = box_refinement_graph(np.array([[0, 0, 4, 4]]), np.array([[0, 0, 8, 8]]))
    assert "float32" in str(got.dtype)
    np.testing.assert_allclose(np_(got), [[0.5, 0.5, np.log(2), np.log(2)]], rtol=1e-6)


def test_jit_compatible():
    rng = np.random.default_rng(2)
    boxes = random_boxes(rng, (6,))
    gt = random_boxes(rng, (6,))

    def fn(b, g):
        d = box_refinement_graph(b, g)
        return clip_boxes_graph(apply_box_deltas_graph(b, d), [0, 0, 40, 40]), overlaps_graph(b, g)

    if keras.backend.backend() == "jax":
        import jax

        jitted = jax.jit(fn)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        jitted = tf.function(fn, jit_compile=True)
    else:
        pytest.skip("jit check for tensorflow / jax")
    got = [np_(x) for x in jitted(boxes, gt)]
    want = [np_(x) for x in fn(boxes, gt)]
    np.testing.assert_allclose(got[0], np.clip(gt, 0, 40), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="boxes"):
        box_area_graph(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="deltas"):
        apply_box_deltas_graph(np.zeros((3, 4)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        norm_boxes_graph(np.zeros((3, 4)), (5,))


def test_sanitize_deltas_keeps_refined_boxes_finite():
    from mrcnn.ops.boxes import MAX_LOG_SCALE, MAX_SHIFT, sanitize_deltas
    deltas = np.array([[np.nan, np.inf, -np.inf, 100.0],
                       [0.1, -0.2, 0.3, -0.4],
                       [50.0, -50.0, 1.0, 2.0]], np.float32)
    got = np.asarray(sanitize_deltas(deltas))
    want = np.array([[0, 0, 0, MAX_LOG_SCALE],
                     [0.1, -0.2, 0.3, -0.4],
                     [MAX_SHIFT, -MAX_SHIFT, 1.0, 2.0]], np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    boxes = np.array([[0.1, 0.1, 0.2, 0.3]] * 3, np.float32)
    assert np.isfinite(np.asarray(apply_box_deltas_graph(boxes, got))).all()
