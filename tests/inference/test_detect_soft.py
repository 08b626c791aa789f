"""model.detect(images, soft_masks=True): mask probabilities, inference overrides, TTA on a real model.

The tiny model's class head is set so that every ROI is class 1 with
probability 0.35 (kernel 0, bias = log-probabilities), and its mask head's
last kernel is scaled so that the mask probabilities spread over (0, 1).
"""

import keras
import numpy as np
import pytest
import skimage.transform
from model_helpers import make_config, shapes
from result_helpers import loop_boxes

import mrcnn.model as modellib
from mrcnn.config import load_config, save_config
from mrcnn.data.masks import SparseMasks
from mrcnn.evaluation import map_iou, tune_postprocess
from mrcnn.inference import PostprocessConfig, TTAModel, apply_mask_threshold, expand

CLASS_PROBS = np.array([0.3, 0.35, 0.2, 0.15], np.float32)   # class 1 wins with 0.35


def _set_heads(model):
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.log(CLASS_PROBS)])
    layer = model.keras_model.get_layer("mrcnn_mask")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 400, bias + 0.3])
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """config.json of a 'trained' run with DETECTION_MIN_CONFIDENCE 0.5, and its weights."""
    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    config = make_config(IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.5)
    save_config(config, str(folder / "config.json"))
    model = _set_heads(modellib.MaskRCNN("inference", config, str(folder)))
    return folder, model.keras_model.get_weights()


def _model(run, **overrides):
    folder, weights = run
    model = modellib.MaskRCNN("inference", load_config(str(folder / "config.json"), **overrides),
                              str(folder))
    model.keras_model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def low(run):
    """The run's model built with DETECTION_MIN_CONFIDENCE overridden to 0.2."""
    return _model(run, DETECTION_MIN_CONFIDENCE=0.2)


@pytest.fixture(scope="module")
def images():
    data = shapes(3, seed=3)
    return [data.load_image(i) for i in data.image_ids]


def _reference_soft(probs, box, shape):
    """skimage: resize the box's probabilities to the box, place them in the image."""
    y1, x1, y2, x2 = (int(v) for v in box)
    out = np.zeros(shape)
    resized = skimage.transform.resize(probs.astype(np.float64), (y2 - y1, x2 - x1), order=1,
                                       mode="edge", anti_aliasing=False)
    out[max(y1, 0):y2, max(x1, 0):x2] = resized[max(-y1, 0):, max(-x1, 0):][
        :min(y2, shape[0]) - max(y1, 0), :min(x2, shape[1]) - max(x1, 0)]
    return out


def test_soft_masks_are_the_pasted_probabilities_and_the_binary_masks_threshold_them(
        low, images, monkeypatch):
    # Matterport's paste, against skimage; the default "grid" paste is checked against its
    # brute force in tests/inference/test_molding.py
    monkeypatch.setattr(low.config, "DETECTION_MASK_PASTE", "centers")
    image = images[0]
    r = low.detect([image], soft_masks=True)[0]
    n = r["class_ids"].size
    assert n > 0 and r["soft_masks"].shape == image.shape[:2] + (n,)
    assert r["soft_masks"].dtype == np.float32
    # binary masks: exactly soft >= DETECTION_MASK_THRESHOLD
    np.testing.assert_array_equal(r["masks"], r["soft_masks"] >= 0.5)
    # soft masks: the mask head's probabilities of the detected class, resized into the box
    molded, metas, _ = low.mold_inputs([image])
    outputs = low.keras_model.predict_on_batch([molded, metas])
    detections, probs = (keras.ops.convert_to_numpy(outputs[i])[0] for i in (0, 3))
    kept = np.flatnonzero(detections[:, 4] > 0)
    assert kept.size == n                         # 64x64 square model: every box has an area
    for k, i in enumerate(kept):
        expected = _reference_soft(probs[i, :, :, int(detections[i, 4])], r["rois"][k],
                                   image.shape[:2])
        np.testing.assert_allclose(r["soft_masks"][..., k], expected, atol=1e-5)
    # the default result is unchanged: same masks, no soft_masks
    plain = low.detect([image])[0]
    assert "soft_masks" not in plain
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(plain[key], r[key])
    # sparse form: the same masks and values
    sparse = low.detect([image], soft_masks=True, sparse=True)[0]
    assert isinstance(sparse["masks"], SparseMasks) and isinstance(sparse["soft_masks"],
                                                                   SparseMasks)
    np.testing.assert_array_equal(sparse["masks"].to_dense(), r["masks"])
    np.testing.assert_array_equal(sparse["soft_masks"].to_soft(), r["soft_masks"])
    # Matterport's unmold_detections keeps its four outputs
    rois, class_ids, scores, masks = low.unmold_detections(
        detections, probs, image.shape, molded.shape[1:], low.mold_inputs([image])[2][0])
    np.testing.assert_array_equal(masks, r["masks"])


def test_a_detection_between_the_thresholds_appears_only_with_the_override(run, low, images):
    trained = _model(run)
    assert trained.config.DETECTION_MIN_CONFIDENCE == 0.5
    assert low.config.DETECTION_MIN_CONFIDENCE == 0.2
    for image in images:
        assert trained.detect([image])[0]["scores"].size == 0        # 0.35 < 0.5
        scores = low.detect([image])[0]["scores"]
        assert scores.size > 0
        np.testing.assert_allclose(scores, 0.35, rtol=1e-5)         # 0.2 <= 0.35 < 0.5


def test_apply_mask_threshold_on_detect_soft_masks(low, images):
    r = low.detect([images[1]], soft_masks=True)[0]
    changed = 0
    for threshold in (0.3, 0.5, 0.7, 0.9):
        out = apply_mask_threshold(r, threshold)
        binary = r["soft_masks"] >= threshold                       # NumPy reference
        keep = binary.any(axis=(0, 1))
        np.testing.assert_array_equal(out["masks"], binary[..., keep])
        np.testing.assert_array_equal(out["rois"], loop_boxes(binary[..., keep]))
        np.testing.assert_array_equal(out["scores"], r["scores"][keep])
        np.testing.assert_allclose(out["soft_masks"], r["soft_masks"][..., keep])
        changed += not np.array_equal(binary, r["masks"])
    assert changed == 3                            # every threshold but 0.5 moves pixels


def test_tune_postprocess_mask_threshold_changes_the_score_by_hand():
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64                    # 197 px
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) & ~disc         # 120 px
    soft = np.where(disc, 0.9, np.where(ring, 0.4, 0.0)).astype(np.float32)[..., None]
    pred = {"rois": loop_boxes(disc[..., None]), "class_ids": np.array([1]),
            "scores": np.array([0.9], np.float32), "masks": disc[..., None],
            "soft_masks": soft}
    gt = (disc[..., None], [1])
    best, table = tune_postprocess([pred], [gt], {"mask_threshold": [0.3, 0.5]})
    scores = {row["mask_threshold"]: row["score"] for row in table}
    iou = disc.sum() / (disc | ring).sum()                          # 197 / 317 = 0.62
    assert scores[0.5] == pytest.approx(1.0)
    assert scores[0.3] == pytest.approx(np.mean(iou > np.arange(0.5, 1.0, 0.05)))  # 3 of 10
    assert best.mask_threshold == 0.5


def test_tune_postprocess_mask_threshold_on_detect_soft_masks(low, images):
    preds = [low.detect([image], soft_masks=True, sparse=True)[0] for image in images]
    # ground truth: the soft masks at 0.6 (non-empty ones)
    gts = []
    for p in preds:
        binary = p["soft_masks"].to_soft() >= 0.6
        keep = binary.any(axis=(0, 1))
        gts.append((binary[..., keep], p["class_ids"][keep]))
    base = PostprocessConfig(resolve_overlaps=False)
    best, table = tune_postprocess(preds, gts, {"mask_threshold": [0.4, 0.6, 0.8]}, base=base)
    scores = {row["mask_threshold"]: row["score"] for row in table}
    for t in (0.4, 0.6, 0.8):       # reference: map_iou of the NumPy-thresholded, non-empty masks
        per_image = []
        for p, gt in zip(preds, gts):
            binary = p["soft_masks"].to_soft() >= t
            per_image.append(map_iou(gt[0], binary[..., binary.any(axis=(0, 1))]))
        assert scores[t] == pytest.approx(np.mean(per_image))
    assert best.mask_threshold == 0.6 and scores[0.6] > max(scores[0.4], scores[0.8])


def test_tta_on_a_real_model_gives_masks_at_the_original_size(run):
    model = _model(run, DETECTION_MIN_CONFIDENCE=0.2, IMAGE_RESIZE_MODE="none",
                   IMAGE_SHAPE=[128, 128, 3])
    rng = np.random.default_rng(0)
    image = (rng.random((48, 80, 3)) * 60).astype(np.uint8)
    image[10:30, 20:50] = 200                                       # not square
    tta = TTAModel(model, "dihedral+scales", min_votes=1, mask_threshold=0.5)
    merged = tta.detect([image], soft_masks=True)[0]
    n = merged["class_ids"].size
    assert n > 0
    assert merged["masks"].shape == (48, 80, n) and merged["soft_masks"].shape == (48, 80, n)
    np.testing.assert_array_equal(merged["masks"], merged["soft_masks"] >= 0.5)
    np.testing.assert_array_equal(merged["rois"], loop_boxes(merged["masks"]))
    sparse = tta.detect([image], sparse=True)[0]
    assert sparse["masks"].shape == (48, 80) and "soft_masks" not in sparse
    np.testing.assert_array_equal(expand(sparse)["masks"], merged["masks"])
