"""README's anchor recipe: coverage, sizes fitted to the dataset, and a model trains with them."""

import math

import mrcnn.model as modellib
from helpers import readme_block
from model_helpers import make_config, shapes
from mrcnn.data.anchors import anchor_coverage, model_anchors


def test_readme_anchor_block_fits_the_sizes_and_the_model_trains_with_them(tmp_path, capsys):
    dataset = shapes(6)
    config = make_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0,
                         RPN_ANCHOR_SCALES=(4, 8, 16, 32, 64))
    namespace = {"dataset": dataset, "config": config}
    exec(compile(readme_block("readme-anchors"), "README.md", "exec"), namespace)
    scales, fitted, yours = namespace["scales"], namespace["fitted"], namespace["yours"]
    assert config.RPN_ANCHOR_SCALES == scales
    assert fitted["mean_best_iou"] > yours["mean_best_iou"]
    printed = capsys.readouterr().out
    assert "'covered'" in printed and str(scales) in printed
    model = modellib.MaskRCNN("training", config, str(tmp_path))   # built for the new sizes
    boxes = namespace["boxes"]
    # the same boxes (all 6 images) on the same 64x64 grid: the model's anchors are the fitted
    assert anchor_coverage(boxes, model_anchors(config)) == fitted
    history = model.train(dataset, None, 0.001, epochs=1, layers="all", verbose=0)
    assert math.isfinite(history.history["loss"][0])
