"""Tests for mrcnn/visualize/__init__.py: the package front Matterport's code imports."""

import pytest
import subprocess
import sys

from mrcnn import visualize
from mrcnn.visualize import anchors, colors, figures, instances, scores, training

# Backend-independent: import checks in a subprocess that must not load Keras.
pytestmark = pytest.mark.backend_independent

PUBLIC = ["DPI", "random_colors", "apply_mask", "display_images", "display_instances",
          "display_top_masks", "display_differences", "draw_boxes", "display_anchors",
          "plot_precision_recall", "plot_precision_recall_iou", "plot_history",
          "plot_lr_schedule", "plot_cache_stats"]


def test_package_reexports_every_public_name_from_its_home():
    assert sorted(visualize.__all__) == sorted(PUBLIC)
    homes = {"DPI": figures, "random_colors": colors, "apply_mask": colors,
             "display_anchors": anchors, "plot_precision_recall": scores,
             "plot_precision_recall_iou": scores, "plot_history": training,
             "plot_lr_schedule": training, "plot_cache_stats": training}
    for name in PUBLIC:
        home = homes.get(name, instances)
        assert getattr(visualize, name) is getattr(home, name), name
    assert visualize.DPI == 100


def test_importing_visualize_loads_no_matplotlib():
    code = ("import sys; from mrcnn import visualize; "
            "print(sorted(m for m in ('matplotlib', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
