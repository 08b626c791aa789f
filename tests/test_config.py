import numpy as np
import pytest

from mrcnn.config import Config


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
    ({"TRAIN_ROIS_PER_IMAGE": 3000}, "TRAIN_ROIS_PER_IMAGE"),
    ({"CACHE": "sometimes"}, "CACHE"),
    ({"OPTIMIZER": "rmsprop"}, "'rmsprop'"),
    ({"RPN_CONV_CHANNELS": 0}, "RPN_CONV_CHANNELS"),
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
