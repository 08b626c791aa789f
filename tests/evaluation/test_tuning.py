"""Tests for mrcnn.evaluation.tuning: grid search of post-processing settings."""

import numpy as np
import pytest

from mrcnn.evaluation import tune_postprocess
from tests.evaluation.eval_helpers import detect_result, square

# Backend-independent: post-processing grid search over NumPy results; no Keras op.
pytestmark = pytest.mark.backend_independent


def _tuning_case():
    """Two images, classes 1 and 2. Class 1 has false positives scored 0.6;
    class 2's true objects are scored 0.55. Tiny (4 px) false positives with
    score 0.95 are removed by min_area >= 5."""
    shape = (40, 40)
    preds, gts = [], []
    for k in range(2):
        gm = np.stack([square(shape, 2, 2 + 12 * k, 8),
                       square(shape, 20, 2, 8), square(shape, 20, 20, 8)], -1)
        gc = np.array([1, 2, 2])
        fp = np.stack([square(shape, 12, 30, 6), square(shape, 35, 35, 2)], -1)
        pm = np.concatenate([gm, fp], -1)
        preds.append(detect_result(pm, [1, 2, 2, 1, 2], [0.9, 0.55, 0.55, 0.6, 0.95]))
        gts.append((gm, gc))
    return preds, gts


def test_tune_postprocess_finds_score_and_area_thresholds():
    preds, gts = _tuning_case()
    grid = {"min_score": [0.0, 0.58], "min_area": [0, 5]}
    best, table = tune_postprocess(preds, gts, grid)
    # Per image with 3 gt: all kept -> 3 TP + 2 FP = 3/5; min_area 5 -> 3/4;
    # min_score .58 removes class 2's true objects: 1 TP, 2 FN, 1 or 2 FP.
    scores = {(r["min_score"], r["min_area"]): r["score"] for r in table}
    assert scores[(0.0, 0)] == pytest.approx(3 / 5)
    assert scores[(0.0, 5)] == pytest.approx(3 / 4)
    assert scores[(0.58, 0)] == pytest.approx(1 / 5)
    assert scores[(0.58, 5)] == pytest.approx(1 / 4)
    assert (best.min_score, best.min_area) == (0.0, 5)
    assert [r["score"] for r in table] == sorted((r["score"] for r in table),
                                                 reverse=True)


def test_tune_postprocess_per_class_refinement():
    preds, gts = _tuning_case()
    names = ["BG", "a", "b"]
    best, table = tune_postprocess(preds, gts, {"min_score": [0.0, 0.58, 0.7],
                                                "min_area": [0, 5]},
                                   class_names=names, per_class=True)
    # Globally (0.0, 5) wins with 3/4. Refining class "a": 0.7 removes its
    # 0.6 false positive and keeps its 0.9 object (score 1.0); class "b"
    # keeps threshold 0.0 (0.58 would drop its 0.55 objects) and area 5.
    assert best.min_score == {"a": 0.7, "b": 0.0}
    assert best.min_area["b"] == 5
    refined = [r for r in table if "class" in r]
    assert max(r["score"] for r in refined) == pytest.approx(1.0)


def test_tune_postprocess_validates_grid():
    preds, gts = _tuning_case()
    with pytest.raises(ValueError, match="grid key 'threshold' is not a PostprocessConfig"):
        tune_postprocess(preds, gts, {"threshold": [0.5]})
    with pytest.raises(ValueError, match=r"grid\['min_score'\] must be a non-empty list"):
        tune_postprocess(preds, gts, {"min_score": []})
    with pytest.raises(ValueError, match="per_class tuning needs"):
        tune_postprocess(preds, gts, {"mask_nms": [None]}, per_class=True)
