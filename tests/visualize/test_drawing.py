"""Tests for mrcnn/visualize/drawing.py: argument checks, arrows, label limits."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.visualize.drawing import as_boxes, as_masks, draw_arrows, place_labels

# Backend-independent: matplotlib drawing helpers; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_as_boxes_and_as_masks_check_shapes():
    assert as_boxes([]).shape == (0, 4)
    assert as_boxes([[1, 2, 3, 4]]).dtype == np.float64
    with pytest.raises(ValueError, match=r"gt_box must have shape \[N, 4\] as \(y1, x1, y2, "
                                         r"x2\), got shape \(2, 3\)"):
        as_boxes(np.zeros((2, 3)), "gt_box")
    masks = as_masks(np.ones((4, 5, 2), np.uint8), (4, 5), 2)
    assert masks.dtype == bool and masks.shape == (4, 5, 2)
    with pytest.raises(ValueError, match=r"mask must be bool \[H, W, N\] = \[4, 5, 3\], "
                                         r"got shape \(4, 5, 2\)"):
        as_masks(masks, (4, 5), 3, "mask")


def test_draw_arrows_run_from_box_centres_to_refined_centres():
    ax = Figure().add_subplot()
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [4.0, 6.0, 8.0, 10.0]])
    refined = np.array([[2.0, 4.0, 12.0, 14.0], [4.0, 6.0, 8.0, 10.0]])
    draw_arrows(ax, boxes, refined, [(1, 0, 0), (0, 1, 0)])
    (quiver,) = ax.collections
    # Centres in pixel-centre coordinates: (y1 + y2) / 2 - 0.5.
    np.testing.assert_allclose(quiver.X, [4.5, 7.5])
    np.testing.assert_allclose(quiver.Y, [4.5, 5.5])
    np.testing.assert_allclose(quiver.U, [4, 0])
    np.testing.assert_allclose(quiver.V, [2, 0])


def test_place_labels_draws_none_above_max_labels_and_skips_boxes_off_the_image():
    ax = Figure(figsize=(4, 4)).add_subplot()
    boxes = np.array([[10, 10, 20, 20], [40, 40, 60, 60], [-20, -20, -5, -5]], float)
    texts, colors = ["a", "b", "c"], [(1, 1, 1)] * 3
    assert place_labels(ax, boxes, texts, colors, [0, 1, 2], (100, 100), 1) == (0, 2, True)
    assert len(ax.texts) == 0
    # The third box lies above and left of the image: no label, not counted.
    assert place_labels(ax, boxes, texts, colors, [0, 1, 2], (100, 100), None) == (2, 0, False)
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b"]
