"""`loss_counts`: what each loss averages over, so that replicas' losses pool to the global one."""

import numpy as np
from keras import ops

from mrcnn.distribute import reduction
from mrcnn.training.trainer import (FOREGROUND_LOSS, LOSS_NAMES, MASK_DICE_LOSS, compute_losses,
                                    loss_counts, loss_names)

B, A, K, T, C, P, M = 4, 30, 6, 8, 3, 5, 7   # images, anchors, rpn rows, rois, classes, mask rois


def batch(seed=0):
    """Random inputs and predictions of the training graph for B images (some empty ones)."""
    rng = np.random.default_rng(seed)
    rpn_match = rng.choice([-1, 0, 0, 1], size=(B, A)).astype("int32")
    rpn_match[1] = np.where(rpn_match[1] == 1, -1, rpn_match[1])   # image 1: negatives only
    rpn_match[2, :12] = 1                                            # more positives than K rows
    target_class_ids = rng.integers(0, C, size=(B, T)).astype("int32")
    target_class_ids[3] = 0                                          # image 3: no positive ROI
    rois = rng.uniform(0, 1, size=(B, T, 4)).astype("float32")
    rois[0, -2:] = 0.0                                               # padding rows
    active = np.ones((B, C), "float32")
    active[2, 2] = 0.0                                               # a class foreign to image 2
    x = {"input_rpn_match": rpn_match,
         "input_rpn_bbox": rng.normal(size=(B, K, 4)).astype("float32")}
    y_pred = {
        "rpn_class_logits": rng.normal(size=(B, A, 2)).astype("float32"),
        "rpn_bbox": rng.normal(size=(B, A, 4)).astype("float32"),
        "mrcnn_class_logits": rng.normal(size=(B, T, C)).astype("float32"),
        "mrcnn_bbox": rng.normal(size=(B, T, C, 4)).astype("float32"),
        "mrcnn_mask_logits": rng.normal(size=(B, P, 4, 4, C)).astype("float32"),
        "rois": rois, "target_class_ids": target_class_ids,
        "target_bbox": rng.normal(size=(B, T, 4)).astype("float32"),
        "target_mask": rng.integers(0, 2, size=(B, P, 4, 4)).astype("float32"),
        "mask_class_ids": target_class_ids[:, :P], "active_class_ids": active,
    }
    return x, y_pred


def part(data, images):
    return {k: v[images] for k, v in data.items()}


def numbers(d):
    return {k: float(ops.convert_to_numpy(v)) for k, v in d.items()}


def test_counts_are_the_denominators_of_the_losses():
    x, y = batch()
    counts = ops.convert_to_numpy(loss_counts(x, y))
    # brute force, image by image
    match = x["input_rpn_match"]
    rpn_bbox = sum(min(int(np.sum(m == 1)), K) for m in match)
    pred = np.argmax(y["mrcnn_class_logits"], axis=-1)
    active = np.take_along_axis(y["active_class_ids"], pred, axis=1)
    valid = np.any(y["rois"] != 0, axis=-1)
    expected = [np.sum(match != 0), rpn_bbox, np.sum(active * valid),
                np.sum(y["target_class_ids"] > 0), np.sum(y["mask_class_ids"] > 0)]
    np.testing.assert_array_equal(counts, np.asarray(expected, "float32"))
    assert counts[1] < np.sum(match == 1)        # image 2 has more positives than rows


def test_halves_pooled_by_their_counts_give_the_loss_of_the_whole_batch():
    """What data-parallel training on 2 replicas computes equals one device's loss."""
    x, y = batch(seed=1)
    whole = numbers(compute_losses(x, y))
    halves = [(part(x, s), part(y, s)) for s in (slice(0, 2), slice(2, 4))]
    losses = [numbers(compute_losses(*h)) for h in halves]
    counts = [ops.convert_to_numpy(loss_counts(*h)) for h in halves]
    total = counts[0] + counts[1]
    for i, name in enumerate(LOSS_NAMES):
        pooled = sum(c[i] / total[i] * loss[name] for c, loss in zip(counts, losses))
        np.testing.assert_allclose(pooled, whole[name], rtol=1e-5, err_msg=name)
    # the mean of the halves' means (dividing by the replica count) is another number
    assert any(abs((losses[0][n] + losses[1][n]) / 2 - whole[n]) > 1e-3 for n in LOSS_NAMES)


def test_the_foreground_loss_pools_by_its_pixels():
    """With FOREGROUND_LOSS's outputs: a sixth count, the pixels of the foreground map."""
    x, y = batch(seed=2)
    rng = np.random.default_rng(2)
    y["foreground_target"] = (rng.random((B, 6, 5, 1)) < 0.4).astype("float32")
    y["foreground_logits"] = rng.normal(size=(B, 6, 5, 1)).astype("float32")
    counts = ops.convert_to_numpy(loss_counts(x, y))
    assert counts.shape == (6,) and counts[5] == B * 6 * 5
    whole = numbers(compute_losses(x, y))
    halves = [(part(x, s), part(y, s)) for s in (slice(0, 1), slice(1, 4))]
    losses = [numbers(compute_losses(*h)) for h in halves]
    counts = [ops.convert_to_numpy(loss_counts(*h)) for h in halves]
    pooled = sum(c[5] / (counts[0][5] + counts[1][5]) * loss[FOREGROUND_LOSS]
                 for c, loss in zip(counts, losses))
    np.testing.assert_allclose(pooled, whole[FOREGROUND_LOSS], rtol=1e-5)
    assert set(whole) == set(LOSS_NAMES) | {FOREGROUND_LOSS}


def test_the_mask_dice_loss_is_counted_when_weighted_and_pools_by_the_positives():
    x, y = batch(seed=3)
    assert loss_names(y) == LOSS_NAMES
    assert loss_names(y, {MASK_DICE_LOSS: 0.0}) == LOSS_NAMES
    names = loss_names(y, {MASK_DICE_LOSS: 0.5})
    assert names == LOSS_NAMES + (MASK_DICE_LOSS,)
    counts = ops.convert_to_numpy(loss_counts(x, y, names))
    assert counts[5] == counts[4] == np.sum(y["mask_class_ids"] > 0)
    whole = numbers(compute_losses(x, y, names))
    assert set(whole) == set(names)
    halves = [(part(x, s), part(y, s)) for s in (slice(0, 1), slice(1, 4))]
    losses = [numbers(compute_losses(*h, names)) for h in halves]
    counts = [ops.convert_to_numpy(loss_counts(*h, names)) for h in halves]
    pooled = sum(c[5] / (counts[0][5] + counts[1][5]) * loss[MASK_DICE_LOSS]
                 for c, loss in zip(counts, losses))
    np.testing.assert_allclose(pooled, whole[MASK_DICE_LOSS], rtol=1e-5)


def test_one_replica_needs_no_weights():
    assert reduction.global_shares(np.ones(5, "float32")) is None
    assert reduction.replicas_in_sync() == 1
