"""non_max_suppression_graph / batched_non_max_suppression_graph vs a brute-force greedy loop."""

import numpy as np
import pytest

import keras
from keras import ops

from mrcnn.ops.nms import batched_non_max_suppression_graph, non_max_suppression_graph

METHODS = ["generic"] + (["native"] if keras.backend.backend() == "tensorflow" else [])


def reference_iou(a, b):
    inter_h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, max_output, iou_threshold, score_threshold=None):
    """Brute-force greedy NMS, padded with -1."""
    boxes = boxes.astype(np.float64)
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    selected = []
    for i in order:
        if len(selected) == max_output:
            break
        if score_threshold is not None and scores[i] < score_threshold:
            continue
        if any(reference_iou(boxes[i], boxes[j]) > iou_threshold for j in selected):
            continue
        selected.append(int(i))
    return np.array(selected + [-1] * (max_output - len(selected)), np.int32)


def random_boxes(rng, n, scale=100.0, max_size=30.0):
    yx = rng.uniform(0, scale, size=(n, 2))
    hw = rng.uniform(1.0, max_size, size=(n, 2))
    return np.concatenate([yx, yx + hw], axis=1).astype(np.float32)


def run(boxes, scores, max_output, iou, score_threshold=None, method=None, **kw):
    return ops.convert_to_numpy(
        non_max_suppression_graph(
            boxes, scores, max_output, iou, score_threshold, method=method, **kw
        )
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("iou", [0.3, 0.7])
def test_random_boxes_match_reference(method, seed, iou):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 300)
    scores = rng.uniform(size=300).astype(np.float32)
    for max_output in (7, 400):
        got = run(boxes, scores, max_output, iou, method=method, tile_size=64)
        np.testing.assert_array_equal(
            got, reference_nms(boxes, scores, max_output, iou)
        )


@pytest.mark.parametrize("method", METHODS)
def test_dense_overlaps_across_many_tiles(method):
    # Many chained overlaps inside and across tiles (tile_size 16).
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 200, scale=40.0, max_size=20.0)
    scores = rng.uniform(size=200).astype(np.float32)
    got = run(boxes, scores, 100, 0.5, method=method, tile_size=16)
    np.testing.assert_array_equal(got, reference_nms(boxes, scores, 100, 0.5))


@pytest.mark.parametrize("method", METHODS)
def test_score_ties_prefer_lower_index(method):
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 120)
    scores = rng.choice([0.2, 0.5, 0.9], size=120).astype(np.float32)
    got = run(boxes, scores, 120, 0.4, method=method, tile_size=32)
    np.testing.assert_array_equal(got, reference_nms(boxes, scores, 120, 0.4))
    # All scores equal and all boxes disjoint: plain index order.
    disjoint = np.array([[0, 10 * i, 5, 10 * i + 5] for i in range(10)], np.float32)
    got = run(disjoint, np.ones(10, np.float32), 12, 0.5, method=method)
    np.testing.assert_array_equal(got, list(range(10)) + [-1, -1])


@pytest.mark.parametrize("method", METHODS)
def test_identical_boxes_keep_best(method):
    boxes = np.tile(np.array([[1.0, 2.0, 11.0, 12.0]], np.float32), (6, 1))
    scores = np.array([0.1, 0.9, 0.3, 0.9, 0.2, 0.5], np.float32)
    got = run(boxes, scores, 4, 0.5, method=method)
    np.testing.assert_array_equal(got, [1, -1, -1, -1])


@pytest.mark.parametrize("method", METHODS)
def test_iou_equal_to_threshold_is_not_suppressed(method):
    # IoU of these two boxes is exactly 0.5 (intersection 50, union 100).
    boxes = np.array([[0, 0, 10, 7.5], [0, 2.5, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert reference_iou(boxes[0], boxes[1]) == 0.5
    np.testing.assert_array_equal(run(boxes, scores, 2, 0.5, method=method), [0, 1])
    np.testing.assert_array_equal(run(boxes, scores, 2, 0.49, method=method), [0, -1])


@pytest.mark.parametrize("method", METHODS)
def test_score_threshold_and_padding(method):
    rng = np.random.default_rng(4)
    boxes = np.zeros((50, 4), np.float32)
    scores = np.zeros(50, np.float32)
    boxes[:20] = random_boxes(rng, 20)
    scores[:20] = rng.uniform(0.05, 1.0, size=20)
    scores[5] = 0.3  # exactly at the threshold: kept (>=)
    # Without a threshold, all-zero padding boxes are selected too (IoU 0).
    got = run(boxes, scores, 50, 0.5, method=method)
    np.testing.assert_array_equal(got, reference_nms(boxes, scores, 50, 0.5))
    assert np.sum(got >= 20) == 30
    got = run(boxes, scores, 50, 0.5, score_threshold=0.3, method=method)
    want = reference_nms(boxes, scores, 50, 0.5, score_threshold=0.3)
    np.testing.assert_array_equal(got, want)
    assert 5 in got and not np.any(got >= 20)
    # All padding with a threshold: nothing selected.
    got = run(np.zeros((30, 4), np.float32), np.zeros(30, np.float32), 8, 0.5, 1e-3,
              method=method)
    np.testing.assert_array_equal(got, -np.ones(8))


@pytest.mark.parametrize("method", METHODS)
def test_batched_matches_per_image_reference(method):
    rng = np.random.default_rng(5)
    boxes = np.stack([random_boxes(rng, 80) for _ in range(3)])
    scores = rng.uniform(size=(3, 80)).astype(np.float32)
    got = ops.convert_to_numpy(
        batched_non_max_suppression_graph(boxes, scores, 30, 0.5, 0.2, method=method)
    )
    assert got.shape == (3, 30) and got.dtype == np.int32
    for b in range(3):
        np.testing.assert_array_equal(
            got[b], reference_nms(boxes[b], scores[b], 30, 0.5, 0.2)
        )


def test_generic_under_jit_matches_reference():
    rng = np.random.default_rng(6)
    boxes = random_boxes(rng, 500)
    scores = rng.uniform(size=500).astype(np.float32)

    def fn(b, s):
        return non_max_suppression_graph(b, s, 100, 0.5, 0.1, method="generic", tile_size=128)

    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(fn)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(fn, jit_compile=True)
    got = ops.convert_to_numpy(fn(boxes, scores))
    np.testing.assert_array_equal(got, reference_nms(boxes, scores, 100, 0.5, 0.1))


def test_bad_arguments_raise():
    boxes = np.zeros((3, 4), np.float32)
    scores = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="max_output_size"):
        non_max_suppression_graph(boxes, scores, 0, 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        non_max_suppression_graph(boxes, scores, 2, 1.5)
    with pytest.raises(ValueError, match="method"):
        non_max_suppression_graph(boxes, scores, 2, 0.5, method="fast")
    with pytest.raises(ValueError, match="scores"):
        non_max_suppression_graph(boxes, scores[:2], 2, 0.5)
    with pytest.raises(ValueError, match="boxes"):
        non_max_suppression_graph(boxes[:, :3], scores, 2, 0.5)


def test_default_method_inside_xla_uses_generic():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA fallback only concerns the TensorFlow backend")
    import tensorflow as tf

    rng = np.random.default_rng(8)
    boxes = random_boxes(rng, 64)
    scores = rng.uniform(size=64).astype(np.float32)
    fn = tf.function(lambda b, s: non_max_suppression_graph(b, s, 20, 0.5), jit_compile=True)
    np.testing.assert_array_equal(fn(boxes, scores).numpy(), reference_nms(boxes, scores, 20, 0.5))


def test_batched_with_unknown_batch_size_in_tf_graph():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("an unknown batch size only arises in TF graphs")
    import tensorflow as tf

    rng = np.random.default_rng(9)
    boxes = np.stack([random_boxes(rng, 40) for _ in range(2)])
    scores = rng.uniform(size=(2, 40)).astype(np.float32)
    for method in METHODS:
        fn = tf.function(
            lambda b, s: batched_non_max_suppression_graph(b, s, 10, 0.5, method=method),
            input_signature=[
                tf.TensorSpec([None, 40, 4], tf.float32),
                tf.TensorSpec([None, 40], tf.float32),
            ],
        )
        got = fn(boxes, scores).numpy()
        for b in range(2):
            np.testing.assert_array_equal(got[b], reference_nms(boxes[b], scores[b], 10, 0.5))


@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_numpy_data_side_nms(method):
    data_boxes = pytest.importorskip("mrcnn.data.boxes")
    rng = np.random.default_rng(10)
    boxes = random_boxes(rng, 150, scale=60.0)
    scores = rng.uniform(size=150).astype(np.float32)
    want = data_boxes.non_max_suppression(boxes, scores, 0.5, max_output=200)
    got = run(boxes, scores, 200, 0.5, method=method, tile_size=32)
    np.testing.assert_array_equal(got[: len(want)], want)
    np.testing.assert_array_equal(got[len(want):], -1)
