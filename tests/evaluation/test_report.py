"""Tests for mrcnn/evaluation.py: COCO AP vs pycocotools, evaluate(), folds, tuning."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.evaluation import (
    coco_ap,
    collect_predictions,
    evaluate,
    kfold_datasets,
    kfold_indices,
    subset_dataset,
    tune_postprocess,
)
from mrcnn.evaluation import map_iou
from mrcnn.inference import PostprocessConfig, SparseMasks
from tests.model_helpers import shapes


def _square(shape, y, x, size):
    m = np.zeros(shape, bool)
    m[y:y + size, x:x + size] = True
    return m


def _boxes(masks):
    out = np.zeros((masks.shape[-1], 4), np.int32)
    for k in range(masks.shape[-1]):
        ys, xs = np.nonzero(masks[..., k])
        out[k] = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
    return out


def _pred(masks, class_ids, scores, rois=None):
    return {"rois": _boxes(masks) if rois is None else np.asarray(rois, np.int32),
            "class_ids": np.asarray(class_ids, np.int32),
            "scores": np.asarray(scores, np.float32), "masks": masks}


def _reference_coco(gt_list, pred_list, iou_type, max_dets):
    """COCOeval run independently: json-like dicts, loadRes, summarize()."""
    images, anns, results = [], [], []
    for k, ((gm, gc), p) in enumerate(zip(gt_list, pred_list)):
        h, w = gm.shape[:2]
        images.append({"id": k + 1, "height": h, "width": w})
        for n in range(gm.shape[-1]):
            rle = mask_utils.encode(np.asfortranarray(gm[..., n].astype(np.uint8)))
            ys, xs = np.nonzero(gm[..., n])
            anns.append({"id": len(anns) + 1, "image_id": k + 1,
                         "category_id": int(gc[n]), "segmentation": rle,
                         "area": float(gm[..., n].sum()), "iscrowd": 0,
                         "bbox": [float(xs.min()), float(ys.min()),
                                  float(xs.max() + 1 - xs.min()),
                                  float(ys.max() + 1 - ys.min())]})
        for n in range(p["masks"].shape[-1]):
            y1, x1, y2, x2 = (float(v) for v in p["rois"][n])
            item = {"image_id": k + 1, "category_id": int(p["class_ids"][n]),
                    "score": float(p["scores"][n])}
            if iou_type == "segm":
                item["segmentation"] = mask_utils.encode(
                    np.asfortranarray(p["masks"][..., n].astype(np.uint8)))
            else:
                item["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            results.append(item)
    cats = sorted({a["category_id"] for a in anns} |
                  {r["category_id"] for r in results})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in cats]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:3]                                    # AP, AP50, AP75


def _random_case(seed):
    """Three images; predictions are shifted / missing / extra / reclassified gt."""
    rng = np.random.default_rng(seed)
    gt_list, pred_list = [], []
    for _ in range(3):
        shape = (48, 56)
        gm = np.stack([_square(shape, rng.integers(0, 36), rng.integers(0, 44),
                               rng.integers(4, 12)) for _ in range(6)], axis=-1)
        gc = rng.integers(1, 3, 6)
        pm, pc, ps = [], [], []
        for n in range(6):
            if rng.random() < 0.2:
                continue                                   # missed
            dy, dx = rng.integers(-2, 3, 2)
            pm.append(np.roll(gm[..., n], (dy, dx), axis=(0, 1)))
            pc.append(gc[n] if rng.random() < 0.85 else 3 - gc[n])
            ps.append(rng.random())
        for _ in range(2):                                 # false positives
            pm.append(_square(shape, rng.integers(0, 40), rng.integers(0, 48), 6))
            pc.append(rng.integers(1, 3))
            ps.append(rng.random())
        gt_list.append((gm, gc))
        pred_list.append(_pred(np.stack(pm, axis=-1), pc, ps))
    return gt_list, pred_list


# ---------------------------------------------------------------------------
# COCO AP
# ---------------------------------------------------------------------------

def test_coco_ap_of_perfect_predictions_is_one():
    gt_list, _ = _random_case(0)
    preds = [_pred(m, c, np.ones(len(c))) for m, c in gt_list]
    out = coco_ap(gt_list, preds, class_names=["BG", "a", "b"])
    for kind in ("mask", "box"):
        assert out[kind]["AP"] == pytest.approx(1.0)
        assert out[kind]["AP50"] == pytest.approx(1.0)
        assert out[kind]["AP75"] == pytest.approx(1.0)
        assert set(out[kind]["per_class"]) == {"a", "b"}


def test_coco_ap_hand_worked_case():
    # One class, two gt objects; a perfect match (score .9) then a false
    # positive (.8): precision 1 up to recall 0.5, nothing beyond. COCO's
    # 101-point interpolation gives 51/101 at every IoU threshold.
    shape = (20, 20)
    gm = np.stack([_square(shape, 0, 0, 5), _square(shape, 10, 10, 5)], axis=-1)
    pm = np.stack([_square(shape, 0, 0, 5), _square(shape, 0, 12, 5)], axis=-1)
    out = coco_ap([(gm, [1, 1])], [_pred(pm, [1, 1], [0.9, 0.8])])
    for kind in ("mask", "box"):
        for key in ("AP", "AP50", "AP75"):
            assert out[kind][key] == pytest.approx(51 / 101)
    # The false positive ranked first instead: precision 1/2 at recall 0.5.
    out = coco_ap([(gm, [1, 1])], [_pred(pm, [1, 1], [0.7, 0.8])])
    assert out["mask"]["AP"] == pytest.approx(0.5 * 51 / 101)


@pytest.mark.parametrize("seed", [1, 2])
def test_coco_ap_agrees_with_pycocotools_run_directly(seed):
    gt_list, pred_list = _random_case(seed)
    out = coco_ap(gt_list, pred_list, max_dets=100)
    for kind, iou_type in (("mask", "segm"), ("box", "bbox")):
        reference = _reference_coco(gt_list, pred_list, iou_type, 100)
        ours = [out[kind][k] for k in ("AP", "AP50", "AP75")]
        np.testing.assert_allclose(ours, reference, atol=1e-12)
        assert 0.0 < reference[0] < 1.0


def test_coco_ap_uses_rois_for_box_ap_and_masks_for_mask_ap():
    shape = (20, 20)
    gm = _square(shape, 2, 2, 8)[..., None]
    # Right mask, box shifted to IoU 0 with the gt box: mask AP 1, box AP 0.
    pred = _pred(gm, [1], [0.9], rois=[[12, 12, 20, 20]])
    out = coco_ap([(gm, [1])], [pred])
    assert out["mask"]["AP"] == pytest.approx(1.0)
    assert out["box"]["AP"] == pytest.approx(0.0)


def test_coco_ap_empty_cases():
    shape = (8, 8)
    no_gt = (np.zeros(shape + (0,), bool), [])
    no_pred = _pred(np.zeros(shape + (0,), bool), [], [], rois=np.zeros((0, 4)))
    out = coco_ap([no_gt], [no_pred])
    assert np.isnan(out["mask"]["AP"]) and out["mask"]["per_class"] == {}
    gm = _square(shape, 0, 0, 3)[..., None]
    out = coco_ap([(gm, [1]), no_gt], [no_pred, no_pred])
    assert out["mask"]["AP"] == 0.0
    with pytest.raises(ValueError, match="gt_list has 1 images but pred_list has 2"):
        coco_ap([no_gt], [no_pred, no_pred])


# ---------------------------------------------------------------------------
# evaluate()
# ---------------------------------------------------------------------------

class _OracleModel:
    """Fake model: detect() returns each image's ground truth (score 1.0),
    optionally without the last instance."""

    def __init__(self, dataset, drop_last=False):
        self.lookup = {dataset.load_image(i).tobytes(): i for i in dataset.image_ids}
        self.dataset = dataset
        self.drop_last = drop_last

    def detect(self, images):
        out = []
        for image in images:
            masks, class_ids = self.dataset.load_mask(self.lookup[image.tobytes()])
            if self.drop_last:
                masks, class_ids = masks[..., :-1], class_ids[:-1]
            out.append(_pred(masks, class_ids, np.ones(len(class_ids))))
        return out


def test_evaluate_with_ground_truth_predictions_scores_one(capsys):
    ds = shapes(count=4, size=64, seed=0)
    report = evaluate(_OracleModel(ds), ds)
    assert report["n_images"] == 4
    assert report["map_iou"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in report["map_iou_per_class"].values())
    assert report["mask"]["AP"] == pytest.approx(1.0)
    assert report["box"]["AP"] == pytest.approx(1.0)
    table = capsys.readouterr().out
    assert "mAP-IoU (competition)" in table and "mask AP50" in table
    assert "(4 images)" in table
    assert set(report["map_iou_per_class"]) <= {"square", "circle", "triangle"}


def test_evaluate_with_a_missed_instance_matches_hand_count():
    ds = shapes(count=6, size=64, seed=1)
    report = evaluate(_OracleModel(ds, drop_last=True), ds, verbose=0)
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


def test_evaluate_applies_postprocess_config_and_callables():
    ds = shapes(count=3, size=64, seed=2)
    model = _OracleModel(ds)
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


# ---------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------

def test_kfold_indices_partition_and_balance():
    folds = kfold_indices(10, 3, seed=0)
    vals = [v for _, v in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(10))
    assert sorted(len(v) for v in vals) == [3, 3, 4]
    for train, val in folds:
        assert np.intersect1d(train, val).size == 0
        assert train.size + val.size == 10
    again = kfold_indices(10, 3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1])
                   for a, b in zip(folds, kfold_indices(10, 3, seed=1)))
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, n=3\]"):
        kfold_indices(3, 4)


def test_kfold_indices_stratified_spreads_each_label():
    labels = np.array(["astro"] * 6 + ["cort"] * 3 + ["shsy5y"] * 9)
    folds = kfold_indices(labels.size, 3, seed=0, stratify=labels)
    for _, val in folds:
        counts = {k: int(np.sum(labels[val] == k)) for k in ("astro", "cort", "shsy5y")}
        assert counts == {"astro": 2, "cort": 1, "shsy5y": 3}
    with pytest.raises(ValueError, match="stratify has 2 labels for n=18"):
        kfold_indices(18, 3, stratify=["a", "b"])


def test_subset_dataset_and_kfold_datasets():
    ds = shapes(count=5, size=32, seed=3)
    sub = subset_dataset(ds, [3, 1])
    assert sub.num_images == 2 and ds.num_images == 5
    np.testing.assert_array_equal(sub.load_image(0), ds.load_image(3))
    np.testing.assert_array_equal(sub.load_mask(1)[0], ds.load_mask(1)[0])
    assert sub.class_names == ds.class_names
    pairs = kfold_datasets(ds, 5, seed=0)
    assert [(t.num_images, v.num_images) for t, v in pairs] == [(4, 1)] * 5
    with pytest.raises(ValueError, match=r"image ids out of range \[0, 5\): \[7\]"):
        subset_dataset(ds, [7])


# ---------------------------------------------------------------------------
# Tuning
# ---------------------------------------------------------------------------

def _tuning_case():
    """Two images, classes 1 and 2. Class 1 has false positives scored 0.6;
    class 2's true objects are scored 0.55. Tiny (4 px) false positives with
    score 0.95 are removed by min_area >= 5."""
    shape = (40, 40)
    preds, gts = [], []
    for k in range(2):
        gm = np.stack([_square(shape, 2, 2 + 12 * k, 8),
                       _square(shape, 20, 2, 8), _square(shape, 20, 20, 8)], -1)
        gc = np.array([1, 2, 2])
        fp = np.stack([_square(shape, 12, 30, 6), _square(shape, 35, 35, 2)], -1)
        pm = np.concatenate([gm, fp], -1)
        preds.append(_pred(pm, [1, 2, 2, 1, 2], [0.9, 0.55, 0.55, 0.6, 0.95]))
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


def test_collect_predictions_is_compact_and_tunable():
    ds = shapes(count=3, size=64, seed=4)
    preds, gts = collect_predictions(_OracleModel(ds), ds)
    assert len(preds) == 3 and isinstance(preds[0]["masks"], SparseMasks)
    best, table = tune_postprocess(preds, gts, {"mask_nms": [None, 0.5]})
    assert table[0]["score"] == pytest.approx(1.0)
