"""Tests for mrcnn/visualize/anchors.py: anchor sizes and RPN targets over an image."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.visualize.anchors import display_anchors
from tests.visualize.picture_helpers import assert_picture

# Backend-independent: matplotlib anchor pictures from NumPy anchors; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_display_anchors_sizes_and_targets(tmp_path):
    from mrcnn.data.anchors import generate_anchors
    from mrcnn.data.rpn_targets import rpn_targets
    image = np.full((64, 64), 120, np.uint8)
    anchors = np.concatenate([generate_anchors(8, [0.5, 1, 2], (16, 16), 4, 1),
                              generate_anchors(16, [0.5, 1, 2], (8, 8), 8, 1)])
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    display_anchors(image, anchors, ax=ax)
    drawn = ax.collections[0].get_paths()
    assert len(drawn) == 6                                  # 2 scales x 3 ratios
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["8 px", "16 px"]
    path = display_anchors(image, anchors, figsize=(4, 4),
                           save_path=tmp_path / "anchors.png")
    assert_picture(path, (4, 4))

    gt = np.array([[10, 10, 26, 30], [40, 36, 56, 52]], np.float32)
    match, bbox = rpn_targets(anchors, gt, np.array([1, 1]), 64, np.array([0.1, 0.1, 0.2, 0.2]),
                              rng=np.random.default_rng(0))
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    display_anchors(image, anchors, match, bbox, gt_boxes=gt, max_negatives=5, ax=ax)
    pos, neg = int((match == 1).sum()), int((match == -1).sum())
    assert f"{pos} positive, {neg} negative (5 shown)" in ax.get_title()
    quiver = [c for c in ax.collections if type(c).__name__ == "Quiver"][0]
    # Refined positive anchors land on their gt boxes: the arrows end at gt centres.
    ends = np.stack([quiver.X + quiver.U, quiver.Y + quiver.V], 1) + 0.5
    centres = np.array([[(b[1] + b[3]) / 2, (b[0] + b[2]) / 2] for b in gt])
    dist = np.abs(ends[:, None, :] - centres[None]).max(-1).min(1)
    np.testing.assert_allclose(dist, 0, atol=1e-3)
    path = display_anchors(image, anchors, match, bbox, gt_boxes=gt, figsize=(5, 4),
                           save_path=tmp_path / "targets.png")
    assert_picture(path, (5, 4))
