"""LOSS_WEIGHTS["mrcnn_mask_dice_loss"] end to end: the Dice term trains, logs and is weighted."""

import math

import pytest

import mrcnn.model as modellib
from helpers import readme_block
from model_helpers import make_config, shapes
from mrcnn.config import Config
from mrcnn.training.trainer import LOSS_NAMES, MASK_DICE_LOSS


def test_the_dice_term_is_logged_and_weighted(tmp_path):
    weights = dict(Config.LOSS_WEIGHTS, **{MASK_DICE_LOSS: 0.5, "mrcnn_mask_loss": 2.0})
    config = make_config(LOSS_WEIGHTS=weights)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    names = LOSS_NAMES + (MASK_DICE_LOSS,)
    assert model.keras_model.loss_names == names
    history = model.train(shapes(6, seed=1), shapes(2, seed=2), config.LEARNING_RATE,
                          epochs=1, layers="all", verbose=0).history
    for prefix in ("", "val_"):
        dice = history[prefix + MASK_DICE_LOSS][0]
        assert math.isfinite(dice) and 0.0 < dice < 1.0      # a mean of per-ROI Dice losses
        parts = sum(weights[n] * history[prefix + n][0] for n in names)
        assert history[prefix + "loss"][0] == pytest.approx(parts, rel=1e-4, abs=1e-5)


def test_without_a_weight_there_is_no_dice_term(tmp_path):
    model = modellib.MaskRCNN("training", make_config(), str(tmp_path))
    assert model.keras_model.loss_names == LOSS_NAMES
    assert Config.LOSS_WEIGHTS[MASK_DICE_LOSS] == 0.0


def test_the_readme_config_block_runs_as_written_and_adds_the_term(tmp_path):
    namespace = {}
    exec(readme_block("mask-dice"), namespace)
    settings = {k: getattr(namespace["MyConfig"], k) for k in ("LOSS_WEIGHTS",)}
    model = modellib.MaskRCNN("training", make_config(**settings), str(tmp_path))
    assert model.keras_model.loss_names == LOSS_NAMES + (MASK_DICE_LOSS,)
    assert model.keras_model.loss_weights_[MASK_DICE_LOSS] == 3.0


def test_the_cell_sample_trains_with_it_and_the_flag_turns_it_off():
    from helpers import load_sample_script
    train = load_sample_script("train")
    assert train.CellConfig.LOSS_WEIGHTS[MASK_DICE_LOSS] == 3.0
    parse = train.build_parser().parse_args
    off = parse(["--loss-weights", "mrcnn_mask_dice_loss=0"]).loss_weights
    assert off == dict(train.CellConfig.LOSS_WEIGHTS, mrcnn_mask_dice_loss=0.0)
    kept = parse(["--loss-weights", "rpn_class_loss=0.5"]).loss_weights
    assert kept[MASK_DICE_LOSS] == 3.0 and kept["rpn_class_loss"] == 0.5
