"""Tests for mrcnn/visualize/scores.py: precision-recall curves."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.visualize.scores import plot_precision_recall, plot_precision_recall_iou
from tests.visualize.picture_helpers import assert_picture, rect_masks

# Backend-independent: matplotlib precision-recall plots of NumPy arrays; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_plot_precision_recall(tmp_path):
    p, r = np.array([0, 1, 0.5, 0]), np.array([0, 0.5, 0.5, 1])
    path = plot_precision_recall(0.5, p, r, figsize=(3, 3),
                                 save_path=tmp_path / "pr.png")
    assert_picture(path, (3, 3))
    fig = Figure()
    ax = fig.add_subplot()
    plot_precision_recall(0.5, p, r, ax=ax)
    assert ax.get_title() == "Precision-recall curve, AP@50 = 0.500"


def test_plot_precision_recall_iou_per_class(tmp_path):
    h, w = 20, 40
    # Class 1 ("astro"): two gt cells, one prediction with IoU 0.6 on the first.
    # Class 2 ("cort"): one gt cell matched exactly.
    gt = rect_masks((h, w), (0, 0, 10, 10), (0, 20, 10, 30), (12, 0, 20, 8))
    pred = np.zeros((h, w, 2), bool)
    pred[0:10, 0:10, 0] = True
    pred[0:5, 0:5, 0] = False
    pred[0:5, 10:15, 0] = True                      # IoU 75 / 125 = 0.6
    pred[12:20, 0:8, 1] = True
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_precision_recall_iou(gt, [1, 1, 2], pred, [1, 2],
                              class_names=["BG", "astro", "cort"],
                              thresholds=[0.5, 0.6, 0.9], ax=axes)
    lines = {(i, line.get_label().split(":")[0]): line.get_ydata()
             for i, a in enumerate(axes) for line in a.get_lines()}
    # Matches need IoU > threshold: the 0.6 pair counts at 0.5 only.
    np.testing.assert_allclose(lines[(0, "astro")], [1, 0, 0])
    np.testing.assert_allclose(lines[(1, "astro")], [0.5, 0, 0])
    np.testing.assert_allclose(lines[(2, "astro")], [0.5, 0, 0])
    np.testing.assert_allclose(lines[(2, "cort")], [1, 1, 1])
    np.testing.assert_allclose(lines[(2, "all (class-agnostic)")], [2 / 3, 1 / 4, 1 / 4])
    # Two images (the same one twice) pool their counts: same rates.
    path = plot_precision_recall_iou([gt, gt], [[1, 1, 2]] * 2, [pred, pred],
                                     [[1, 2]] * 2, figsize=(9, 3),
                                     save_path=tmp_path / "pr_iou.png")
    assert_picture(path, (9, 3))
