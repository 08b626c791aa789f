"""Mixed precision: 16-bit convolutions, float32 geometry, finite training."""

import math

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.layers.walk import is_container
from mrcnn.training import precision
from mrcnn.training.precision import (compute_dtype, cpu_bfloat16_is_fast, policy_name,
                                     resolve)
from mrcnn.training.trainer import LOSS_NAMES

# Layers that hold coordinates, scores or targets: always float32.
FLOAT32_LAYERS = ("anchors", "ROI", "proposal_targets", "roi_align_classifier",
                  "roi_align_mask", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask",
                  "mrcnn_class", "mrcnn_detection", "input_image_meta_fixed")
MIXED_LAYERS = ("scnn_s1_conv1", "scnn_s5_conv2", "fpn_c2p2", "fpn_p2", "mrcnn_class_conv1",
                "mrcnn_mask_conv1", "mrcnn_mask_deconv")


def test_policy_names_and_errors():
    assert policy_name(None) is None and policy_name(False) is None
    assert policy_name("bfloat16") == "mixed_bfloat16"
    assert policy_name("float16") == "mixed_float16"
    with pytest.raises(ValueError, match="'bf16'"):
        policy_name("bf16")
    with pytest.raises(ValueError, match="MIXED_PRECISION"):
        make_config(MIXED_PRECISION="half")


def test_scope_restores_the_global_policy_also_on_error():
    before = keras.config.dtype_policy().name
    with compute_dtype("bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(RuntimeError):
        with compute_dtype("float16"):
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before


def policies(model):
    found = {}

    def walk(m):
        for layer in m.layers:
            found[layer.name] = layer.dtype_policy.name
            if is_container(layer):     # the RPN, the JAX mask head's buckets
                walk(layer)
    walk(model.keras_model)
    return found


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_bfloat16_model_layout(mode):
    model = modellib.MaskRCNN(mode, make_config(MIXED_PRECISION="bfloat16"), "unused")
    found = policies(model)
    for name in MIXED_LAYERS + ("rpn_conv_shared",):
        assert found[name] == "mixed_bfloat16", name
    for name in FLOAT32_LAYERS + ("rpn_class_raw", "rpn_bbox_pred"):
        if name in found:
            assert found[name] == "float32", (name, found[name])
    for out in model.keras_model.outputs:
        assert out.dtype in ("float32", "int32", "bool"), out
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_trains_and_detects(precision, tmp_path):
    config = make_config(MIXED_PRECISION=precision, STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    history = model.train(shapes(4), shapes(2, seed=3), 0.01, 1, "all", verbose=0)
    for name in ("loss",) + LOSS_NAMES:
        assert math.isfinite(history.history[name][0]), (name, history.history)
    if precision == "float16":
        assert isinstance(model.keras_model.optimizer, keras.optimizers.LossScaleOptimizer)
    # weights stay float32 and load into a float32 inference model as well
    assert all(v.dtype == "float32" for v in model.keras_model.trainable_variables)
    for infer_precision in (precision, None):
        infer = modellib.MaskRCNN("inference", make_config(MIXED_PRECISION=infer_precision),
                                  str(tmp_path))
        report = infer.load_weights(model.find_last())
        assert not report["missing"] and not report["shape_mismatch"]
        image = shapes(1).load_image(0)
        r = infer.detect([image])[0]
        n = r["rois"].shape[0]
        assert r["masks"].shape == image.shape[:2] + (n,)
        assert np.all(np.isfinite(r["scores"]))


def test_bfloat16_features_track_float32():
    """The same weights in both precisions: P2 agrees to bfloat16 accuracy."""
    f32 = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), "unused")
    b16 = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1,
                                                     MIXED_PRECISION="bfloat16"), "unused")
    b16.keras_model.set_weights(f32.keras_model.get_weights())
    config = f32.config
    h, w = config.IMAGE_SHAPE[:2]
    image = np.zeros((1, h, w, 3), "float32")
    image[0, :48, :48] = shapes(1).load_image(0)[:48, :48] - 128.0
    meta = compose_image_meta(0, (h, w, 3), (h, w, 3), (0, 0, h, w), 1.0,
                              np.ones(config.NUM_CLASSES))[None]
    outs = []
    for m in (f32, b16):
        p2 = keras.Model(m.keras_model.inputs,
                         m.keras_model.get_layer("fpn_p2").output)([image, meta])
        outs.append(keras.ops.convert_to_numpy(keras.ops.cast(p2, "float32")))
    err = np.abs(outs[0] - outs[1]).max() / np.abs(outs[0]).max()
    assert 0 < err < 0.05, err


# ------------------------------------------------------------------- MIXED_PRECISION = "auto"
@pytest.mark.parametrize("device, backbone, backend, expected", [
    (("gpu", (9, 0)), "small-cnn", "jax", "bfloat16"),        # H100
    (("gpu", (8, 0)), "resnet50", "tensorflow", "bfloat16"),  # A100
    (("gpu", (7, 5)), "resnet50", "torch", "float16"),        # T4 (Kaggle)
    (("gpu", (6, 0)), "efficientnetv2-b0", "jax", "float16"),  # P100 (Kaggle)
    (("gpu", (5, 2)), "resnet50", "tensorflow", None),        # Maxwell: no fast 16 bits
    (("gpu", None), "resnet50", "tensorflow", None),          # capability unknown
    (("tpu", None), "small-cnn", "jax", "bfloat16"),
    (("cpu", True), "resnet50", "tensorflow", "bfloat16"),
    (("cpu", True), "resnet101", "tensorflow", "bfloat16"),
    (("cpu", True), "efficientnetv2-b0", "tensorflow", "bfloat16"),
    (("cpu", True), "small-cnn", "tensorflow", None),         # measured slower in bf16
    (("cpu", True), "resnet50", "jax", None),                 # XLA:CPU not measured faster
    (("cpu", False), "resnet50", "tensorflow", None),
])
def test_auto_picks_the_precision_that_is_free_on_the_device(device, backbone, backend,
                                                             expected):
    assert resolve("auto", backbone, backend=backend, device=device) == expected


def test_auto_on_a_cpu_with_a_user_backbone_is_float32():
    assert resolve("auto", lambda x: x, backend="tensorflow", device=("cpu", True)) is None


@pytest.mark.parametrize("setting, expected", [
    (None, None), (False, None), ("bfloat16", "bfloat16"), ("float16", "float16")])
def test_explicit_settings_resolve_to_themselves(setting, expected):
    assert resolve(setting, "resnet50") == expected


@pytest.mark.parametrize("setting", ["fp16", "AUTO", True, 16])
def test_unknown_settings_are_refused_with_the_choices(setting):
    with pytest.raises(ValueError, match="must be None, 'auto', 'bfloat16' or 'float16'"):
        resolve(setting, "resnet50")


@pytest.mark.parametrize("vendor, flags, expected", [
    ("GenuineIntel", "fpu avx512f avx512_bf16 amx_bf16 amx_tile", True),   # Sapphire Rapids
    ("GenuineIntel", "fpu avx512f avx512_bf16 avx512_fp16", False),        # AMX hidden
    ("AuthenticAMD", "fpu avx512f avx512_bf16", True),                      # Zen 4
    ("AuthenticAMD", "fpu avx2", False),                                    # Zen 3
    ("GenuineIntel", "fpu avx2", False),
])
def test_fast_cpu_bfloat16_is_read_from_cpuinfo(tmp_path, vendor, flags, expected):
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {i}\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n\n"
                            for i in range(2)))
    assert cpu_bfloat16_is_fast(str(path)) is expected
    assert cpu_bfloat16_is_fast(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("device, policy", [(("gpu", (8, 6)), "mixed_bfloat16"),
                                            (("cpu", False), "float32")])
def test_an_auto_model_builds_in_the_resolved_precision(monkeypatch, device, policy):
    monkeypatch.setattr(precision, "_device", lambda backend: device)
    config = make_config(MIXED_PRECISION="auto")
    assert config.MIXED_PRECISION == "auto"          # kept as asked: resolved per machine
    model = modellib.MaskRCNN("inference", config, "unused")
    policies = {model.keras_model.get_layer(name).dtype_policy.name
                for name in ("fpn_c2p2", "fpn_p2", "mrcnn_mask_conv1")}
    assert policies == {policy}
    assert model.keras_model.get_layer("mrcnn_mask").dtype_policy.name == "float32"


def test_auto_is_the_default_and_a_matterport_config_gets_it():
    """A Matterport-style subclass that never names MIXED_PRECISION gets "auto": 16 bits
    where the device runs them natively (here a pretended A100), float32 elsewhere."""
    from mrcnn.config import Config

    class MatterportStyle(Config):
        NAME = "shapes"
        NUM_CLASSES = 4

    assert Config.MIXED_PRECISION == "auto" and MatterportStyle().MIXED_PRECISION == "auto"
    assert resolve(MatterportStyle.MIXED_PRECISION, "resnet101",
                   backend="tensorflow", device=("gpu", (8, 0))) == "bfloat16"
    assert resolve(MatterportStyle.MIXED_PRECISION, "resnet101",
                   backend="tensorflow", device=("cpu", False)) is None
