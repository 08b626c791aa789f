"""Tests for mrcnn.evaluation.coco: COCO AP against pycocotools run directly."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.evaluation import coco_ap
from tests.evaluation.eval_helpers import detect_result, square

# Backend-independent: COCO AP of NumPy results against pycocotools; no Keras op.
pytestmark = pytest.mark.backend_independent


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
        gm = np.stack([square(shape, rng.integers(0, 36), rng.integers(0, 44),
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
            pm.append(square(shape, rng.integers(0, 40), rng.integers(0, 48), 6))
            pc.append(rng.integers(1, 3))
            ps.append(rng.random())
        gt_list.append((gm, gc))
        pred_list.append(detect_result(np.stack(pm, axis=-1), pc, ps))
    return gt_list, pred_list


# ---------------------------------------------------------------------------
# COCO AP
# ---------------------------------------------------------------------------

def test_coco_ap_of_perfect_predictions_is_one():
    gt_list, _ = _random_case(0)
    preds = [detect_result(m, c, np.ones(len(c))) for m, c in gt_list]
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
    gm = np.stack([square(shape, 0, 0, 5), square(shape, 10, 10, 5)], axis=-1)
    pm = np.stack([square(shape, 0, 0, 5), square(shape, 0, 12, 5)], axis=-1)
    out = coco_ap([(gm, [1, 1])], [detect_result(pm, [1, 1], [0.9, 0.8])])
    for kind in ("mask", "box"):
        for key in ("AP", "AP50", "AP75"):
            assert out[kind][key] == pytest.approx(51 / 101)
    # The false positive ranked first instead: precision 1/2 at recall 0.5.
    out = coco_ap([(gm, [1, 1])], [detect_result(pm, [1, 1], [0.7, 0.8])])
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
    gm = square(shape, 2, 2, 8)[..., None]
    # Right mask, box shifted to IoU 0 with the gt box: mask AP 1, box AP 0.
    pred = detect_result(gm, [1], [0.9], rois=[[12, 12, 20, 20]])
    out = coco_ap([(gm, [1])], [pred])
    assert out["mask"]["AP"] == pytest.approx(1.0)
    assert out["box"]["AP"] == pytest.approx(0.0)


def test_coco_ap_empty_cases():
    shape = (8, 8)
    no_gt = (np.zeros(shape + (0,), bool), [])
    no_pred = detect_result(np.zeros(shape + (0,), bool), [], [], rois=np.zeros((0, 4)))
    out = coco_ap([no_gt], [no_pred])
    assert np.isnan(out["mask"]["AP"]) and out["mask"]["per_class"] == {}
    gm = square(shape, 0, 0, 3)[..., None]
    out = coco_ap([(gm, [1]), no_gt], [no_pred, no_pred])
    assert out["mask"]["AP"] == 0.0
    with pytest.raises(ValueError, match="gt_list has 1 images but pred_list has 2"):
        coco_ap([no_gt], [no_pred, no_pred])
