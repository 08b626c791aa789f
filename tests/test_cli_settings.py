"""Tests for mrcnn.cli_settings: command-line text -> Config values, errors named."""

import argparse

import pytest

from mrcnn.cli_settings import (parse_loss_weights, parse_mean_pixel, parse_mini_mask,
                                parse_rpn_iou, parse_scale_range, run_size_settings,
                                stage_epochs)
from mrcnn.config import Config

# Backend-independent: text parsing, no Keras op.
pytestmark = pytest.mark.backend_independent


def test_loss_weights_set_the_named_losses_and_keep_the_others():
    weights = parse_loss_weights("rpn_class_loss=0.5, rpn_bbox_loss=0.25")
    assert weights == {"rpn_class_loss": 0.5, "rpn_bbox_loss": 0.25, "mrcnn_class_loss": 1.0,
                       "mrcnn_bbox_loss": 1.0, "mrcnn_mask_loss": 1.0,
                       "mrcnn_mask_dice_loss": 0.0, "mrcnn_foreground_loss": 1.0}
    assert parse_loss_weights("mrcnn_foreground_loss=0.3")["mrcnn_foreground_loss"] == 0.3
    assert Config.LOSS_WEIGHTS["rpn_class_loss"] == 1.0            # the class's dict untouched
    assert parse_loss_weights("mrcnn_mask_loss=0", {"mrcnn_mask_loss": 2.0, "x": 3.0}) == \
        {"mrcnn_mask_loss": 0.0, "x": 3.0}
    config = type("Two", (Config,), {"NUM_CLASSES": 2})()
    config.LOSS_WEIGHTS = parse_loss_weights("mrcnn_mask_loss=2")
    config.validate()                                              # the keys Config expects


@pytest.mark.parametrize("text, message", [
    ("", r"name=weight pairs"),
    ("rpn_loss=0.5", r"a name of \['mrcnn_bbox_loss'.*got 'rpn_loss=0.5'"),
    ("rpn_class_loss", r"got 'rpn_class_loss'"),
    ("rpn_class_loss=-1", r"rpn_class_loss must be a number >= 0, got '-1'"),
    ("rpn_class_loss=nan", r"got 'nan'"),
    ("rpn_class_loss=x", r"got 'x'"),
])
def test_bad_loss_weights_are_named(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_loss_weights(text)


def test_the_flags_through_argparse(capsys):
    p = argparse.ArgumentParser()
    p.add_argument("--loss-weights", type=parse_loss_weights)
    p.add_argument("--mean-pixel", type=parse_mean_pixel)
    p.add_argument("--mini-mask", type=parse_mini_mask)
    args = p.parse_args(["--loss-weights", "mrcnn_mask_loss=2", "--mean-pixel", "30,20,10",
                         "--mini-mask", "none"])
    assert args.loss_weights["mrcnn_mask_loss"] == 2.0
    assert args.mean_pixel == (30.0, 20.0, 10.0) and args.mini_mask == "none"
    assert p.parse_args(["--mean-pixel", "auto", "--mini-mask", "28"]).mini_mask == 28
    for flag, bad, message in (("--loss-weights", "rpn=1", "a name of"),
                               ("--mean-pixel", "1,2", "one value or three"),
                               ("--mini-mask", "0", "must be positive")):
        with pytest.raises(SystemExit):
            p.parse_args([flag, bad])
        assert message in capsys.readouterr().err


def test_scale_range():
    assert parse_scale_range("1.5, 2.5") == (1.5, 2.5) and parse_scale_range("2,2") == (2.0, 2.0)
    for bad, message in (("2", "expected LO,HI"), ("a,b", "expected LO,HI"),
                         ("1,2,3", "expected LO,HI"), ("2,1", "0 < LO <= HI, got '2,1'"),
                         ("0,1", "0 < LO <= HI")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_scale_range(bad)


def test_rpn_iou():
    assert parse_rpn_iou("0.5") == (0.5, 0.3)
    assert parse_rpn_iou("0.6,0.4") == (0.6, 0.4)
    assert parse_rpn_iou("0.2") == (0.2, 0.2)                 # the negative IoU follows down
    for text, message in (("0.3,0.5", "NEG <= POS"), ("1.2", "NEG <= POS"), ("a", "POS,NEG"),
                          ("0.5,0.3,0.1", "POS,NEG"), ("nan", "POS,NEG")):
        with pytest.raises(argparse.ArgumentTypeError, match=message) as err:
            parse_rpn_iou(text)
        assert repr(text) in str(err.value)
    config = type("Loose", (Config,), {"NUM_CLASSES": 2})()
    config.RPN_POSITIVE_IOU, config.RPN_NEGATIVE_IOU = parse_rpn_iou("0.5,0.3")
    config.validate()


def test_stage_epochs():
    parse = stage_epochs(3)
    assert parse("40,120,160") == (40, 120, 160)
    assert parse("1,1,2") == (1, 1, 2)                   # a stage may end where the last did
    for bad in ("40,120", "40,30,160", "0,1,2", "a,b,c", "1,2,3,4"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"3 stages.*{bad!r}"):
            parse(bad)
    assert stage_epochs(2)("20,40") == (20, 40)


def test_run_size_settings_only_what_was_given():
    args = argparse.Namespace(steps_per_epoch=5, validation_steps=None, backbone="small-cnn")
    assert run_size_settings(args) == {"STEPS_PER_EPOCH": 5, "BACKBONE": "small-cnn"}
    assert run_size_settings(argparse.Namespace(backbone=None)) == {}
