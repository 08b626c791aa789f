"""Tests for mrcnn.evaluation.report: evaluate(), format_report, collect_predictions."""

import numpy as np
import pytest

from mrcnn.evaluation import (collect_predictions, evaluate, format_report, map_iou,
                              tune_postprocess)
from mrcnn.inference import PostprocessConfig, SparseMasks
from tests.evaluation.eval_helpers import OracleModel, sixty_percent_pair
from tests.model_helpers import shapes

# Backend-independent: evaluate() over an oracle model (NumPy results, no Keras model).
pytestmark = pytest.mark.backend_independent


def test_evaluate_with_ground_truth_predictions_scores_one(capsys):
    ds = shapes(count=4, size=64, seed=0)
    report = evaluate(OracleModel(ds), ds)
    assert report["n_images"] == 4
    assert report["map_iou"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in report["map_iou_per_class"].values())
    assert report["mask"]["AP"] == pytest.approx(1.0)
    assert report["box"]["AP"] == pytest.approx(1.0)
    table = capsys.readouterr().out
    assert "mAP-IoU (competition)" in table and "mask AP50" in table
    assert "(4 images)" in table
    n_gt = sum(p["n_gt"] for p in report["per_image"])
    assert f"at IoU 0.5: 0 of {n_gt} objects missed, 0 of {n_gt} predictions false; " \
           f"matched masks' IoU median 1.000 (q25 1.000)" in table
    assert set(report["map_iou_per_class"]) <= {"square", "circle", "triangle"}


def test_evaluate_with_a_missed_instance_matches_hand_count():
    ds = shapes(count=6, size=64, seed=1)
    report = evaluate(OracleModel(ds, drop_last=True), ds, verbose=0)
    # An image with n gt instances and n - 1 perfect predictions scores
    # (n - 1) / n at every IoU threshold.
    expected = []
    for i in ds.image_ids:
        masks, _ = ds.load_mask(i)
        n = masks.shape[-1]
        expected.append((n - 1) / n)
        assert report["per_image"][i]["n_gt"] == n
        assert report["per_image"][i]["n_pred"] == n - 1
    assert report["map_iou"] == pytest.approx(np.mean(expected))
    assert [p["map_iou"] for p in report["per_image"]] == pytest.approx(expected)
    # Per image the same number comes from mrcnn.evaluation.map_iou.
    masks, _ = ds.load_mask(0)
    assert report["per_image"][0]["map_iou"] == pytest.approx(
        map_iou(masks, masks[..., :-1]))
    # Missing instances lower COCO AP too.
    assert 0.0 < report["mask"]["AP"] < 1.0
    # Where the score went: one object missed per image, no false prediction, perfect masks.
    assert [p["missed"] for p in report["per_image"]] == [1] * len(expected)
    assert [p["false_positives"] for p in report["per_image"]] == [0] * len(expected)
    n_gt = sum(p["n_gt"] for p in report["per_image"])
    # The dropped (last) instance of each image, counted where its mask reaches the border.
    edge_per_image = []
    for i in ds.image_ids:
        last = ds.load_mask(i)[0][..., -1]
        edge_per_image.append(int(last[0].any() or last[-1].any() or last[:, 0].any()
                                  or last[:, -1].any()))
    at_edge = sum(edge_per_image)
    assert [p["missed_at_edge"] for p in report["per_image"]] == edge_per_image
    assert report["errors"] == {"threshold": 0.5, "n_gt": n_gt, "n_pred": n_gt - len(expected),
                                "missed": len(expected), "missed_at_edge": at_edge,
                                "false_positives": 0,
                                "matched_iou_median": pytest.approx(1.0),
                                "matched_iou_q25": pytest.approx(1.0)}


def test_evaluate_breakdown_starts_at_the_lowest_threshold():
    # Predictions at IoU 0.6 with the truth: matched at 0.5, missed and false from 0.6 on.
    gt, pred = sixty_percent_pair()

    class Fixed:
        def detect(self, images, verbose=0):
            return [{"rois": np.array([[0, 0, 10, 15]]), "class_ids": np.array([1]),
                     "scores": np.array([0.9]), "masks": pred} for _ in images]

    class One:
        image_ids = [0]
        class_names = ["BG", "cell"]

        def load_image(self, image_id):
            return np.zeros((20, 20, 3), np.uint8)

        def load_mask(self, image_id):
            return gt, np.array([1], np.int32)

    low = evaluate(Fixed(), One(), verbose=0)
    assert (low["errors"]["missed"], low["errors"]["false_positives"]) == (0, 0)
    assert low["errors"]["matched_iou_median"] == pytest.approx(0.6)
    high = evaluate(Fixed(), One(), verbose=0, thresholds=[0.6, 0.7])
    assert high["errors"]["threshold"] == 0.6 and high["map_iou"] == 0.0
    assert (high["errors"]["missed"], high["errors"]["false_positives"]) == (1, 1)
    assert np.isnan(high["errors"]["matched_iou_median"])
    # The gt object starts at row 0, column 0: it touches the image's edge.
    assert high["errors"]["missed_at_edge"] == 1 and low["errors"]["missed_at_edge"] == 0
    assert "at IoU 0.6: 1 of 1 objects missed (1 touching the image edge), 1 of 1 predictions " \
        "false" in format_report(high).splitlines()[-2]


def test_evaluate_applies_postprocess_config_and_callables():
    ds = shapes(count=3, size=64, seed=2)
    model = OracleModel(ds)
    # A score threshold above 1 removes every prediction: score 0.
    report = evaluate(model, ds, postprocess=PostprocessConfig(min_score=1.5),
                      verbose=0)
    assert report["map_iou"] == 0.0
    calls = []
    report = evaluate(model, ds, image_ids=[0, 2],
                      postprocess=lambda r: calls.append(1) or r, verbose=0)
    assert len(calls) == 2 and report["n_images"] == 2
    with pytest.raises(TypeError, match="postprocess must be None"):
        evaluate(model, ds, postprocess="fast", verbose=0)


def test_collect_predictions_is_compact_and_tunable():
    ds = shapes(count=3, size=64, seed=4)
    preds, gts = collect_predictions(OracleModel(ds), ds)
    assert len(preds) == 3 and isinstance(preds[0]["masks"], SparseMasks)
    best, table = tune_postprocess(preds, gts, {"mask_nms": [None, 0.5]})
    assert table[0]["score"] == pytest.approx(1.0)
