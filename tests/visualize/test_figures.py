"""Tests for mrcnn/visualize/figures.py: the return and saving conventions under Agg."""

import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.visualize.figures import open_axes
from mrcnn.visualize.instances import display_instances
from tests.visualize.picture_helpers import assert_picture, exact_axes, rect_masks

# Backend-independent: matplotlib figure conventions; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_return_conventions_under_agg(tmp_path):
    image = np.zeros((16, 16), np.uint8)
    masks = rect_masks((16, 16), (2, 2, 8, 8))
    args = (image, None, masks, [1], ["BG", "a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # e.g. "FigureCanvasAgg is non-interactive"
        fig = display_instances(*args, figsize=(3, 3))
    assert isinstance(fig, matplotlib.figure.Figure)
    import matplotlib.pyplot as plt
    plt.close(fig)
    own_fig, own_ax = exact_axes(16, 16, 4)
    assert display_instances(*args, ax=own_ax) is None
    nested = tmp_path / "a" / "b" / "x.png"
    assert display_instances(*args, figsize=(3, 2), save_path=nested) == str(nested)
    assert_picture(nested, (3, 2))


def test_open_axes_takes_the_callers_axes_or_makes_a_figure(tmp_path):
    fig = Figure()
    axes = fig.subplots(1, 3)
    got_fig, got, own = open_axes(axes, 3, 3, None, None, "f")
    assert got_fig is fig and list(got) == list(axes) and own is False
    got_fig, got, own = open_axes(axes[0], 1, 1, None, None, "f")
    assert got == [axes[0]] and own is False
    with pytest.raises(ValueError, match=r"f draws 3 panel\(s\); ax must be a sequence of 3 Axes"):
        open_axes(axes[:2], 3, 3, None, None, "f")
    with pytest.raises(ValueError, match="ax must be an Axes, got 5"):
        open_axes(5, 1, 1, None, None, "f")
    # A new figure to be saved: 3 panels on a 2-column grid, the spare cell removed.
    new, got, own = open_axes(None, 3, 2, (4, 4), tmp_path / "x.png", "f")
    assert own is True and len(got) == 3 and len(new.axes) == 3
