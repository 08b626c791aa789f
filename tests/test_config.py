import re

import numpy as np
import pytest

from mrcnn.config import Config

# Backend-independent: Config validation and JSON (a subprocess checks Keras is not even imported).
pytestmark = pytest.mark.backend_independent


class Small(Config):
    NAME = "small"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 2
    GPU_COUNT = 1
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128


def test_derived_values():
    c = Small()
    assert c.BATCH_SIZE == 2
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [128, 128, 3])
    # 1 id + 3 original shape + 3 image shape + 4 window + 1 scale + classes
    assert c.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 3


def test_crop_mode_uses_min_dim():
    class C(Small):
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 256
    np.testing.assert_array_equal(C().IMAGE_SHAPE, [64, 64, 3])


def test_explicit_non_square_shape():
    class C(Small):
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [576, 704, 3]
    np.testing.assert_array_equal(C().IMAGE_SHAPE, [576, 704, 3])


def test_display_and_to_dict(capsys):
    c = Small()
    d = c.to_dict()
    assert d["NUM_CLASSES"] == 3 and d["BATCH_SIZE"] == 2
    c.display()
    out = capsys.readouterr().out
    assert "NUM_CLASSES" in out and "IMAGE_META_SIZE" in out


@pytest.mark.parametrize("attrs, fragment", [
    ({"IMAGE_MAX_DIM": 100, "IMAGE_MIN_DIM": 100}, "divisible by 64"),
    ({"IMAGE_RESIZE_MODE": "none", "IMAGE_SHAPE": [520, 704]}, "520x704"),
    ({"MASK_SHAPE": [42, 42]}, "MASK_SHAPE"),
    ({"MASK_SHAPE": [84, 84]}, "28*N"),
    ({"MASK_SHAPE": [56, 28]}, "square"),
    ({"MASK_SHAPE": [56, 56], "MINI_MASK_SHAPE": (28, 28)}, "MINI_MASK_SHAPE"),
    ({"NUM_CLASSES": 1}, "NUM_CLASSES"),
    ({"IMAGE_RESIZE_MODE": "stretch"}, "'stretch'"),
    ({"RPN_ANCHOR_SCALES": (8, 16)}, "one scale per level"),
    ({"LOSS_WEIGHTS": {"rpn_clas_loss": 1.0}}, "rpn_clas_loss"),
    ({"LOSS_WEIGHTS": {"mrcnn_mask_dice_loss": -1.0}},
     "LOSS_WEIGHTS['mrcnn_mask_dice_loss'] must be a finite number >= 0"),
    ({"LOSS_WEIGHTS": {"mrcnn_mask_loss": "2"}}, "LOSS_WEIGHTS['mrcnn_mask_loss'] must be a finite"),
    ({"TRAIN_ROIS_PER_IMAGE": 3000}, "TRAIN_ROIS_PER_IMAGE"),
    ({"CACHE": "sometimes"}, "CACHE"),
    ({"OPTIMIZER": "rmsprop"}, "'rmsprop'"),
    ({"RPN_CONV_CHANNELS": 0}, "RPN_CONV_CHANNELS"),
    ({"RPN_POSITIVE_IOU": 0.2}, "RPN_NEGATIVE_IOU=0.3, RPN_POSITIVE_IOU=0.2"),
    ({"RPN_POSITIVE_IOU": 1.5}, "RPN_POSITIVE_IOU=1.5"),
])
def test_validation_errors_name_the_value(attrs, fragment):
    C = type("Bad", (Small,), attrs)
    with pytest.raises(ValueError) as err:
        C()
    assert fragment in str(err.value)


def test_valid_mask_heads():
    for n in (28, 56, 112):
        C = type("M", (Small,), {"MASK_SHAPE": [n, n], "MINI_MASK_SHAPE": (112, 112)})
        assert list(C().MASK_SHAPE) == [n, n]


def test_save_and_load_config_round_trip(tmp_path):
    from mrcnn.config import load_config, save_config

    class C(Small):
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [576, 704, 3]
        MASK_SHAPE = [56, 56]
        MINI_MASK_SHAPE = (56, 56)
        LOSS_WEIGHTS = {"mrcnn_mask_loss": 2.0}
    path = save_config(C(), str(tmp_path / "config.json"))
    c = load_config(path, IMAGES_PER_GPU=1)
    assert c.BATCH_SIZE == 1 and c.NUM_CLASSES == 3
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [576, 704, 3])
    assert list(c.MASK_SHAPE) == [56, 56] and c.LOSS_WEIGHTS == {"mrcnn_mask_loss": 2.0}
    np.testing.assert_allclose(c.MEAN_PIXEL, Small.MEAN_PIXEL)


def test_config_variant_keeps_the_settings_and_derives_again():
    from mrcnn.config import config_variant

    class C(Small):
        IMAGES_PER_GPU = 4
        GPU_COUNT = 2
        IMAGE_RESIZE_MODE = "none"
        IMAGE_SHAPE = [576, 704, 3]
        LOSS_WEIGHTS = {"mrcnn_mask_loss": 2.0}
    base = C()
    assert base.BATCH_SIZE == 8
    v = config_variant(base, "At64x128", IMAGES_PER_GPU=1, GPU_COUNT=1, IMAGE_SHAPE=[64, 128, 3])
    assert isinstance(v, C) and type(v).__name__ == "CAt64x128"
    assert v.BATCH_SIZE == 1 and list(v.IMAGE_SHAPE) == [64, 128, 3]
    assert v.LOSS_WEIGHTS == {"mrcnn_mask_loss": 2.0} and v.NUM_CLASSES == base.NUM_CLASSES
    assert v.IMAGE_META_SIZE == base.IMAGE_META_SIZE
    assert base.BATCH_SIZE == 8 and list(base.IMAGE_SHAPE) == [576, 704, 3]   # untouched


def test_load_config_needs_callable_backbone_again(tmp_path):
    from mrcnn.config import load_config, save_config

    def my_backbone(inputs, **kw):
        return []
    C = type("C", (Small,), {"BACKBONE": my_backbone})
    path = save_config(C(), str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="my_backbone"):
        load_config(path)
    assert load_config(path, BACKBONE=my_backbone).BACKBONE is my_backbone


def test_multiple_anchor_sizes_per_level():
    class C(Small):
        RPN_ANCHOR_SCALES = ((8, 11), (16, 23), (32, 45), (64, 91), (128, 181))
        RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    assert C().RPN_ANCHORS_PER_LOCATION == 6
    assert Small().RPN_ANCHORS_PER_LOCATION == 3
    with pytest.raises(ValueError, match="same number of sizes"):
        type("B", (Small,), {"RPN_ANCHOR_SCALES": ((8, 11), 16, 32, 64, 128)})()


def test_backbone_strides_are_derived_from_the_backbone():
    assert Small().BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    c = type("C", (Small,), {"BACKBONE": "small-cnn", "BACKBONE_FIRST_STRIDE": 1})()
    assert c.BACKBONE_STRIDES == [2, 4, 8, 16, 32]
    assert Config.BACKBONE_STRIDES == [4, 8, 16, 32, 64]          # the class is untouched
    # a saved config (its strides are the derived ones) loads back
    same = type("C", (Small,), {"BACKBONE_FIRST_STRIDE": 1, "BACKBONE_STRIDES": [2, 4, 8, 16, 32]})
    assert same().BACKBONE_STRIDES == [2, 4, 8, 16, 32]
    bad = type("C", (Small,), {"BACKBONE_STRIDES": [8, 16, 32, 64, 128]})
    with pytest.raises(ValueError, match=r"BACKBONE_STRIDES=\[8, 16, 32, 64, 128\] but backbone "
                                         r"'resnet101'.*\[4, 8, 16, 32, 64\]"):
        bad()
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        type("C", (Small,), {"BACKBONE": "resnet7"})()


def test_use_rpn_rois_false_is_refused_and_true_is_accepted():
    assert type("C", (Small,), {"USE_RPN_ROIS": True})()
    with pytest.raises(ValueError, match="USE_RPN_ROIS = False .* not supported"):
        type("C", (Small,), {"USE_RPN_ROIS": False})()


@pytest.mark.parametrize("pool, sizes, bad", [(14, (28, 56, 112), (42, 224)),
                                              (7, (14, 28, 56), (21, 112)),
                                              (28, (56, 112, 224), (28,))])
def test_mask_pool_size_sets_the_mask_sizes(pool, sizes, bad):
    for n in sizes:
        C = type("M", (Small,), {"MASK_POOL_SIZE": pool, "MASK_SHAPE": [n, n],
                                 "MINI_MASK_SHAPE": (224, 224)})
        assert C().MASK_POOL_SIZE == pool
    for n in bad:
        C = type("M", (Small,), {"MASK_POOL_SIZE": pool, "MASK_SHAPE": [n, n],
                                 "MINI_MASK_SHAPE": (224, 224)})
        with pytest.raises(ValueError, match=f"{2 * pool}\\*N .* MASK_POOL_SIZE={pool}"):
            C()
    with pytest.raises(ValueError, match="MASK_POOL_SIZE must be a positive int, got 0"):
        type("M", (Small,), {"MASK_POOL_SIZE": 0})()


def test_another_mask_head_skips_the_standard_size_rule():
    C = type("M", (Small,), {"MASK_HEAD": "light", "MASK_SHAPE": [42, 42],
                             "MINI_MASK_SHAPE": (56, 56)})
    assert C().MASK_SHAPE == [42, 42]
    with pytest.raises(ValueError, match="MASK_HEAD must be a registered name or a callable"):
        type("M", (Small,), {"MASK_HEAD": 3})()


def test_a_config_does_not_import_keras():
    """A Config reads its backbone's strides from the registry without importing Keras."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from mrcnn.config import Config\n"
            "type('C', (Config,), {'NUM_CLASSES': 2, 'BACKBONE': 'efficientnetv2-b0'})()\n"
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"


# ---------------------------------------------------------------- hostile settings (issue 15)
INTEGER_SETTINGS = ["NUM_CLASSES", "GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH",
                    "VALIDATION_STEPS", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "MAX_GT_INSTANCES",
                    "DETECTION_MAX_INSTANCES", "TRAIN_ROIS_PER_IMAGE", "PRE_NMS_LIMIT",
                    "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
                    "RPN_TRAIN_ANCHORS_PER_IMAGE", "RPN_ANCHOR_STRIDE", "IMAGE_CHANNEL_COUNT",
                    "FPN_CLASSIF_FC_LAYERS_SIZE", "TOP_DOWN_PYRAMID_SIZE", "N_WARMUP_STEPS",
                    "WORKERS", "MAX_QUEUE_SIZE", "CACHE_MAX_BYTES", "MASK_HEAD_CHANNELS",
                    "POOL_SIZE", "MASK_POOL_SIZE"]


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
@pytest.mark.parametrize("value", ["4", 4.0, True, None])
def test_integer_settings_of_the_wrong_type_name_the_setting(name, value):
    if value is None and name in ("IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "CACHE_MAX_BYTES"):
        return                      # None is documented for these (see the next tests)
    C = type("Bad", (Small,), {name: value})
    with pytest.raises(TypeError, match=rf"Bad: {name} must be an int, got {re.escape(repr(value))} "
                                        rf"\({type(value).__name__}\)"):
        C()


@pytest.mark.parametrize("value", ["wide", "4", 4.0, True, None, 0, -256])
def test_rpn_conv_channels_take_auto_or_a_positive_int(value):
    assert Small().RPN_CONV_CHANNELS == "auto"          # the default
    assert type("C", (Small,), {"RPN_CONV_CHANNELS": np.int64(512)})().RPN_CONV_CHANNELS == 512
    C = type("Bad", (Small,), {"RPN_CONV_CHANNELS": value})
    with pytest.raises(ValueError, match=rf"Bad: RPN_CONV_CHANNELS must be 'auto' or a "
                                         rf"positive int, got {re.escape(repr(value))}"):
        C()


def test_numpy_integers_are_integers():
    c = type("C", (Small,), {"NUM_CLASSES": np.int64(3), "STEPS_PER_EPOCH": np.int32(7)})()
    assert c.IMAGE_META_SIZE == Small().IMAGE_META_SIZE and c.STEPS_PER_EPOCH == 7


@pytest.mark.parametrize("name, value, low", [
    ("STEPS_PER_EPOCH", 0, 1), ("STEPS_PER_EPOCH", -3, 1), ("VALIDATION_STEPS", -1, 0),
    ("GPU_COUNT", 0, 1), ("IMAGES_PER_GPU", 0, 1), ("MAX_GT_INSTANCES", 0, 1),
    ("PRE_NMS_LIMIT", 0, 1), ("RPN_TRAIN_ANCHORS_PER_IMAGE", 0, 1), ("N_WARMUP_STEPS", -1, 0),
    ("WORKERS", -2, 0), ("MAX_QUEUE_SIZE", 0, 1), ("IMAGE_MAX_DIM", 0, 1),
])
def test_integer_settings_below_their_minimum_are_refused(name, value, low):
    # STEPS_PER_EPOCH = 0 used to "train" without a step
    with pytest.raises(ValueError, match=rf"{name} must be >= {low}, got {value}"):
        type("Bad", (Small,), {name: value})()


def test_validation_steps_zero_means_no_validation_and_is_accepted():
    assert type("C", (Small,), {"VALIDATION_STEPS": 0})().VALIDATION_STEPS == 0


@pytest.mark.parametrize("name", ["LEARNING_RATE", "LEARNING_MOMENTUM", "WEIGHT_DECAY",
                                  "GRADIENT_CLIP_NORM", "DETECTION_MIN_CONFIDENCE",
                                  "RPN_NMS_THRESHOLD", "IMAGE_MIN_SCALE"])
def test_number_settings_refuse_strings(name):
    with pytest.raises(TypeError, match=rf"{name} must be a number, got '0\.5' \(str\)"):
        type("Bad", (Small,), {name: "0.5"})()


@pytest.mark.parametrize("value", ["False", 0, None])
def test_fold_batch_norms_must_be_a_bool(value):
    with pytest.raises(TypeError, match=rf"Bad: FOLD_BATCH_NORMS must be True or False, got "
                                        rf"{re.escape(repr(value))} \({type(value).__name__}\)"):
        type("Bad", (Small,), {"FOLD_BATCH_NORMS": value})()
    assert type("Good", (Small,), {"FOLD_BATCH_NORMS": False})().FOLD_BATCH_NORMS is False


def test_square_mode_min_dim_below_64_multiple_is_legal_and_works():
    # IMAGE_MIN_DIM only scales up images whose short side is below it; the
    # input is IMAGE_MAX_DIM square, so it need not be a multiple of 64
    from mrcnn.data.fit import fit_image

    C = type("C", (Small,), {"IMAGE_MIN_DIM": 100, "IMAGE_MAX_DIM": 128})
    config = C()
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [128, 128, 3])
    image, window, scale, _, _ = fit_image(np.ones((50, 80, 3), np.uint8), config)
    # 50 -> 100 would make the long side 160 > 128: the max wins, scale 128 / 80
    assert image.shape == (128, 128, 3) and scale == pytest.approx(1.6)
    assert window == (24, 0, 104, 128)
    image, window, scale, _, _ = fit_image(np.ones((60, 70, 3), np.uint8), config)
    assert scale == pytest.approx(100 / 60) and image.shape == (128, 128, 3)
    assert window == (14, 5, 114, 122)             # 100x117, centred: 14 + 14, 5 + 6


@pytest.mark.parametrize("attrs, fragment", [
    # an explicit input smaller than what the mode produces: every sample would fail
    ({"IMAGE_RESIZE_MODE": "square", "IMAGE_MAX_DIM": 256, "IMAGE_SHAPE": [128, 128, 3]},
     r"IMAGE_SHAPE \[128, 128\] is smaller than the 256x256 images of IMAGE_RESIZE_MODE "
     r"'square' \(IMAGE_MAX_DIM=256\)"),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 192, "IMAGE_MAX_DIM": 256,
      "IMAGE_SHAPE": [128, 128, 3]},
     r"IMAGE_SHAPE \[128, 128\] is smaller than the 192x192 crops of IMAGE_RESIZE_MODE 'crop' "
     r"\(IMAGE_MIN_DIM=192\)"),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": None},
     r"IMAGE_RESIZE_MODE 'crop' needs IMAGE_MIN_DIM \(the crop size\), got None"),
    ({"IMAGE_RESIZE_MODE": "square", "IMAGE_MAX_DIM": None},
     r"IMAGE_RESIZE_MODE 'square' needs IMAGE_MAX_DIM"),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 100, "IMAGE_MAX_DIM": 256},
     "divisible by 64"),
])
def test_settings_that_break_every_sample_are_refused(attrs, fragment):
    with pytest.raises(ValueError, match=fragment):
        type("Bad", (Small,), attrs)()


def test_crop_smaller_than_an_explicit_input_is_padded_and_legal():
    C = type("C", (Small,), {"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 100,
                             "IMAGE_SHAPE": [128, 128, 3]})
    np.testing.assert_array_equal(C().IMAGE_SHAPE, [128, 128, 3])


@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "a\\b", "/abs", "", "cell run",
                                  "c\u00e9ll", "x\0", 7])
def test_names_that_are_not_a_plain_folder_name_are_refused(name):
    # NAME becomes the run folder <model_dir>/<name><stamp>: "../../x" escaped model_dir
    error = TypeError if not isinstance(name, str) else ValueError
    with pytest.raises(error, match=rf"NAME must be .*letters, digits, '_', '-' and '\.'.*"
                                    rf"got {re.escape(repr(name))}"):
        type("Bad", (Small,), {"NAME": name})()


@pytest.mark.parametrize("name", [None, "cell", "cell_v2.1-b", "LIVECell", "x..y"])
def test_plain_names_are_accepted(name):
    assert type("C", (Small,), {"NAME": name})().NAME == name


# ------------------------------------------------------ step learning-rate decay
def test_step_schedule_settings_are_accepted_and_saved(tmp_path):
    from mrcnn.config import load_config, save_config

    assert (Config.LR_DECAY_EPOCHS, Config.LR_DECAY_GAMMA) == ((), 0.1)
    C = type("C", (Small,), {"LR_SCHEDULE": "step", "LR_DECAY_EPOCHS": (20, 25),
                             "LR_DECAY_GAMMA": 0.5})
    c = C()
    assert (c.LR_SCHEDULE, c.LR_DECAY_EPOCHS, c.LR_DECAY_GAMMA) == ("step", (20, 25), 0.5)
    loaded = load_config(save_config(c, str(tmp_path / "config.json")))
    assert (loaded.LR_SCHEDULE, list(loaded.LR_DECAY_EPOCHS), loaded.LR_DECAY_GAMMA) == \
        ("step", [20, 25], 0.5)
    # numpy ints, one epoch, gamma 1 (no decay) are legal
    type("C", (Small,), {"LR_SCHEDULE": "step", "LR_DECAY_EPOCHS": [np.int64(3)],
                         "LR_DECAY_GAMMA": 1})()


@pytest.mark.parametrize("attrs, message", [
    ({"LR_SCHEDULE": "steps"}, "LR_SCHEDULE must be False, True/'cosine', 'exponential' or "
                               "'step', got 'steps'"),
    ({"LR_DECAY_EPOCHS": (25, 20)}, "LR_DECAY_EPOCHS must be a tuple of increasing positive "
                                    "ints (the epochs after which the rate is multiplied by "
                                    "LR_DECAY_GAMMA), e.g. (20, 25); got (25, 20)"),
    ({"LR_DECAY_EPOCHS": (20, 20)}, "got (20, 20)"),
    ({"LR_DECAY_EPOCHS": (0, 5)}, "got (0, 5)"),
    ({"LR_DECAY_EPOCHS": (-1,)}, "got (-1,)"),
    ({"LR_DECAY_EPOCHS": (2.5,)}, "got (2.5,)"),
    ({"LR_DECAY_EPOCHS": (True,)}, "got (True,)"),
    ({"LR_DECAY_EPOCHS": "20,25"}, "got '20,25'"),
    ({"LR_DECAY_EPOCHS": 20}, "got 20"),
    ({"LR_DECAY_GAMMA": 0}, "LR_DECAY_GAMMA must be in (0, 1] (the factor of each step "
                            "decay), got 0"),
    ({"LR_DECAY_GAMMA": 1.5}, "got 1.5"),
    ({"LR_DECAY_GAMMA": -0.1}, "got -0.1"),
    ({"LR_DECAY_GAMMA": float("nan")}, "got nan"),
    ({"LR_DECAY_EPOCHS": ()}, "LR_SCHEDULE = 'step' needs LR_DECAY_EPOCHS, the epochs after "
                              "which the rate is multiplied by LR_DECAY_GAMMA, e.g. (20, 25); "
                              "got ()"),
    ({"LR_SCHEDULE": "cosine"}, "LR_DECAY_EPOCHS = (20, 25) is only used by LR_SCHEDULE = "
                                "'step', but LR_SCHEDULE is 'cosine': set LR_SCHEDULE = 'step' "
                                "or LR_DECAY_EPOCHS = ()"),
])
def test_step_schedule_settings_are_checked(attrs, message):
    base = {"LR_SCHEDULE": "step", "LR_DECAY_EPOCHS": (20, 25)}
    with pytest.raises(ValueError) as err:
        type("Bad", (Small,), base | attrs)()
    assert str(err.value).startswith("Bad: ") and message in str(err.value)


def test_step_decay_gamma_must_be_a_number():
    with pytest.raises(TypeError, match=r"Bad: LR_DECAY_GAMMA must be a number, got '0\.1' "
                                        r"\(str\)"):
        type("Bad", (Small,), {"LR_SCHEDULE": "step", "LR_DECAY_EPOCHS": (2,),
                               "LR_DECAY_GAMMA": "0.1"})()
