"""Weight files: Matterport/Keras-2 HDF5 by name, mrcnn checkpoints, Keras 3 files."""

import json
import os

import h5py
import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config
from mrcnn.weights import h5

# Matterport mask_rcnn_coco.h5: layer names and weight shapes (no values), in the file's order.
LAYOUT = os.path.join(os.path.dirname(__file__), "matterport_coco_weights_layout.json")


def write_matterport_file(path, layout):
    """A Keras-2 style HDF5 file in Matterport's layout; layer i's weights are all i + 1."""
    with h5py.File(path, "w") as f:
        names = [l["name"] for l in layout["layers"]]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for i, layer in enumerate(layout["layers"]):
            g = f.create_group(layer["name"])
            wnames = [w["name"] for w in layer["weights"]]
            g.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            for w in layer["weights"]:
                g.create_dataset(w["name"], data=np.full(w["shape"], i + 1, np.float32),
                                 compression="gzip")
    return {l["name"]: i + 1 for i, l in enumerate(layout["layers"])}


@pytest.mark.slow
def test_matterport_coco_layout_loads_by_name(tmp_path):
    layout = json.load(open(LAYOUT))
    path = tmp_path / "mask_rcnn_coco.h5"
    values = write_matterport_file(path, layout)

    # Same architecture as the COCO file: everything loads strictly (by_name=False).
    coco = make_config(BACKBONE="resnet101", NUM_CLASSES=81, TOP_DOWN_PYRAMID_SIZE=256,
                       FPN_CLASSIF_FC_LAYERS_SIZE=1024, IMAGES_PER_GPU=1, MASK_HEAD_CHANNELS=256,
                       IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(32, 64, 128, 256, 512))
    model = modellib.MaskRCNN("inference", coco, str(tmp_path))
    report = model.load_weights(str(path))
    assert not report["missing"] and not report["shape_mismatch"]
    # RPN_CONV_CHANNELS "auto" built 256 channels; the file's 512 rebuilt the model
    assert report["rpn_rebuilt"] == 512 == coco.RPN_CONV_CHANNELS
    assert model.keras_model.count_params() == layout["total_params"]
    layer = model.keras_model.get_layer("res4w_branch2c")
    assert np.all(layer.get_weights()[0] == values["res4w_branch2c"])
    rpn = model.keras_model.get_layer("rpn_model")
    assert np.all(rpn.get_layer("rpn_bbox_pred").get_weights()[1] == values["rpn_model"])

    # Another NUM_CLASSES: exclude the class-specific heads, load the rest.
    cells = make_config(BACKBONE="resnet101", NUM_CLASSES=4, TOP_DOWN_PYRAMID_SIZE=256,
                        FPN_CLASSIF_FC_LAYERS_SIZE=1024, IMAGES_PER_GPU=1, MASK_HEAD_CHANNELS=256,
                        IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128)
    model = modellib.MaskRCNN("inference", cells, str(tmp_path))
    with pytest.raises(ValueError, match="mrcnn_class_logits"):
        model.load_weights(str(path))  # strict: shape mismatches are an error
    report = model.load_weights(str(path), by_name=True, exclude="heads")
    # mrcnn_bbox is a reshape (no weights) in this model; the other three are excluded
    assert sorted(report["excluded"]) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert not report["shape_mismatch"] and not report["missing"]
    assert np.all(model.keras_model.get_layer("fpn_p3").get_weights()[0] == values["fpn_p3"])
    # without exclude, by_name reports the mismatches and still loads the rest
    report = model.load_weights(str(path), by_name=True)
    assert {n for n, _, _ in report["shape_mismatch"]} == {"mrcnn_class_logits", "mrcnn_bbox_fc",
                                                          "mrcnn_mask"}


def test_checkpoint_round_trip_training_to_inference(tmp_path):
    config = make_config()
    train = modellib.MaskRCNN("training", config, str(tmp_path))
    rng = np.random.default_rng(0)
    for v in train.keras_model.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    path = train.save_weights(str(tmp_path / "mask_rcnn_tiny_0007.h5"))
    infer = modellib.MaskRCNN("inference", config, str(tmp_path))
    report = infer.load_weights(path)
    assert infer.epoch == 7
    assert not report["missing"] and not report["shape_mismatch"]
    for name in ("fpn_c5p5", "mrcnn_mask", "scnn_s3_conv2", "mrcnn_class_bn1"):
        a = train.keras_model.get_layer(name).get_weights()
        b = infer.keras_model.get_layer(name).get_weights()
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_keras3_weights_file_loads_structurally(tmp_path):
    config = make_config()
    a = modellib.MaskRCNN("inference", config, str(tmp_path))
    path = str(tmp_path / "model.weights.h5")
    a.keras_model.save_weights(path)
    b = modellib.MaskRCNN("inference", config, str(tmp_path))
    b.load_weights(path)
    for x, y in zip(a.keras_model.get_weights(), b.keras_model.get_weights()):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="by structure"):
        b.load_weights(path, by_name=True)


def test_missing_file_error(tmp_path):
    model = modellib.MaskRCNN("inference", make_config(), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        model.load_weights(str(tmp_path / "nope.h5"))


def nested_model(seed):
    """A plain keras.Model holding a nested model ("inner": conv_a, conv_b) and a dense layer."""
    inner_in = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inner_in)
    x = keras.layers.Conv2D(2, 1, name="conv_b")(x)
    inner = keras.Model(inner_in, x, name="inner")
    inputs = keras.Input((8, 8, 3))
    y = keras.layers.Flatten(name="flat")(inner(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(y))
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    return model


def test_save_and_load_by_name_without_the_model_class(tmp_path):
    a, b = nested_model(0), nested_model(1)
    path = h5.save_weights(a, tmp_path / "plain.h5")
    assert path == str(tmp_path / "plain.h5") and os.listdir(tmp_path) == ["plain.h5"]
    assert h5.file_layer_names(path) == ["inner", "dense"]
    groups, inner = h5.read_named_weights(path)
    assert [n for n, _ in groups["inner"]] == ["conv_a/kernel:0", "conv_a/bias:0",
                                               "conv_b/kernel:0", "conv_b/bias:0"]
    assert sorted(inner) == ["conv_a", "conv_b", "dense"]
    report = h5.load_weights_file(b, path, exclude=["dense"])
    assert report == {"loaded": ["conv_a", "conv_b"], "excluded": ["dense"], "missing": [],
                      "shape_mismatch": []}
    np.testing.assert_array_equal(b.get_layer("inner").get_weights()[2],
                                  a.get_layer("inner").get_weights()[2])
    assert not np.array_equal(b.get_layer("dense").get_weights()[0],
                              a.get_layer("dense").get_weights()[0])


def test_nested_model_loads_layer_by_layer_and_renamed_copies(tmp_path):
    a, b = nested_model(2), nested_model(3)
    path = h5.save_weights(a, tmp_path / "plain.h5")
    renamed = h5.renamed_copy(path, str(tmp_path / "renamed.h5"),
                              lambda n: {"inner": "other"}.get(n))
    assert h5.file_layer_names(renamed) == ["other"]
    # "inner" is not in the file, its layers are (by the names inside "other")
    report = h5.load_weights_file(b, renamed, by_name=True)
    assert report["loaded"] == ["conv_a", "conv_b"] and report["missing"] == ["dense"]
    with pytest.raises(ValueError, match=r"not in the file: \['dense'\]"):
        h5.load_weights_file(b, renamed)
    for x, y in zip(a.get_layer("inner").get_weights(), b.get_layer("inner").get_weights()):
        np.testing.assert_array_equal(x, y)


def test_exclude_matcher():
    assert h5.exclude_matcher(None)("mrcnn_mask") is False
    heads = h5.exclude_matcher("heads")
    assert heads("mrcnn_mask") and heads("mrcnn_class_logits") and not heads("mrcnn_mask_conv1")
    assert h5.exclude_matcher("heads", ("x",))("x")
    assert h5.exclude_matcher(r"fpn_.*")("fpn_p2") and not h5.exclude_matcher(r"fpn_")("fpn_p2")
    assert h5.exclude_matcher(["a", "b"])("b")


# ----------------------------------------------------------------- integrity
def dense_model(seed):
    """A flat model (no nested model), as Matterport's Keras 2 loader handles."""
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, name="fc1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="fc2")(x))
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    return model


def test_checkpoints_store_a_sha256_per_array_and_stay_matterport_readable(tmp_path):
    import hashlib
    from keras.src.legacy.saving import legacy_h5_format

    a = nested_model(0)
    path = h5.save_weights(a, tmp_path / "plain.h5")
    with h5py.File(path) as f:
        assert h5._decode(f.attrs["layer_names"]) == ["inner", "dense"]
        assert h5._decode(f["inner"].attrs["weight_names"]) == [
            "conv_a/kernel:0", "conv_a/bias:0", "conv_b/kernel:0", "conv_b/bias:0"]
        for layer in ("inner", "dense"):
            for name in h5._decode(f[layer].attrs["weight_names"]):
                data = f[layer][name][()]
                assert f[layer][name].attrs["sha256"] == hashlib.sha256(data.tobytes()).hexdigest()
    # Matterport's reader (Keras 2's load_weights_from_hdf5_group_by_name) ignores the checksums
    source, target = dense_model(1), dense_model(2)
    path = h5.save_weights(source, tmp_path / "flat.h5")
    with h5py.File(path) as f:
        legacy_h5_format.load_weights_from_hdf5_group_by_name(f, target)
    for x, y in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(x, y)


def flip_bytes(path, layer, weight, count=64, start=8):
    """Overwrite `count` bytes inside a dataset's data in the file (as a bad disk or copy would)."""
    with h5py.File(path, "r") as f:
        offset = f[layer][weight].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(offset + start)
        data = bytearray(f.read(count))
        f.seek(offset + start)
        f.write(bytes(b ^ 0x5A for b in data))


def test_flipped_bytes_inside_a_weight_array_are_refused(tmp_path):
    a, b = nested_model(0), nested_model(1)
    path = h5.save_weights(a, tmp_path / "mask_rcnn_x_0003.h5")
    flip_bytes(path, "inner", "conv_a/kernel:0")
    before = b.get_weights()
    with pytest.raises(h5.WeightsFileError) as err:
        h5.load_weights_file(b, path)
    msg = str(err.value)
    assert path in msg and "inner" in msg and "conv_a/kernel:0" in msg and "SHA-256" in msg
    assert isinstance(err.value, ValueError)
    for x, y in zip(before, b.get_weights()):              # nothing was assigned
        np.testing.assert_array_equal(x, y)
    with pytest.raises(h5.WeightsFileError, match="conv_a/kernel:0"):
        h5.read_named_weights(path)


def test_a_truncated_file_names_the_file(tmp_path):
    path = h5.save_weights(nested_model(0), tmp_path / "mask_rcnn_x_0004.h5")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    model = nested_model(1)
    for call in (lambda: h5.load_weights_file(model, path), lambda: h5.file_layer_names(path),
                 lambda: h5.is_keras3_weights_file(path)):
        with pytest.raises(h5.WeightsFileError) as err:
            call()
        assert path in str(err.value) and "truncated" in str(err.value)


def test_files_without_checksums_still_load(tmp_path):
    """Matterport's COCO file and older checkpoints carry no checksums."""
    from tests.weights.weight_helpers import keras2_layers_of, write_keras2_h5
    source, target = dense_model(3), dense_model(4)
    path = write_keras2_h5(tmp_path / "old.h5", keras2_layers_of(source))
    assert h5.load_weights_file(target, str(path))["loaded"] == ["fc1", "fc2"]
    for x, y in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(x, y)
    # but a file that says it has checksums must have them all
    path = h5.save_weights(source, tmp_path / "new.h5")
    with h5py.File(path, "r+") as f:
        del f["fc2"]["fc2/bias:0"].attrs["sha256"]
    with pytest.raises(h5.WeightsFileError, match=r"fc2/bias:0.*no SHA-256"):
        h5.load_weights_file(target, path)


def test_non_finite_weights_in_a_file_are_refused(tmp_path):
    source = nested_model(5)
    source.get_layer("dense").bias.assign(np.array([0.0, np.nan, 1.0], np.float32))
    path = h5.save_weights(source, tmp_path / "mask_rcnn_x_0005.h5")   # plain saves still write
    target = nested_model(6)
    before = target.get_weights()
    with pytest.raises(h5.WeightsFileError) as err:
        h5.load_weights_file(target, path)
    msg = str(err.value)
    assert path in msg and "dense" in msg and "NaN" in msg and "inner" not in msg
    for x, y in zip(before, target.get_weights()):
        np.testing.assert_array_equal(x, y)
    # a layer that is not loaded is not checked
    report = h5.load_weights_file(target, path, exclude=["dense"])
    assert report["loaded"] == ["conv_a", "conv_b"]
    # nor is a refusal possible to miss with save_weights(finite_only=True)
    with pytest.raises(FloatingPointError, match="dense"):
        h5.save_weights(source, tmp_path / "refused.h5", finite_only=True)
    assert not os.path.exists(tmp_path / "refused.h5")
    assert sorted(os.listdir(tmp_path)) == ["mask_rcnn_x_0005.h5"]


def test_keras3_file_with_non_finite_weights_is_refused(tmp_path):
    source = nested_model(7)
    source.get_layer("dense").kernel.assign(
        np.full(tuple(source.get_layer("dense").kernel.shape), np.inf, np.float32))
    path = str(tmp_path / "model.weights.h5")
    source.save_weights(path)
    with pytest.raises(h5.WeightsFileError, match=r"model\.weights\.h5.*(inf|NaN)"):
        h5.load_weights_file(nested_model(8), path)


def test_model_refuses_a_diverged_checkpoint(tmp_path):
    """MaskRCNN.load_weights (and so samples/cell/predict.py) refuses a file with NaN weights."""
    config = make_config()
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    layer = model.keras_model.get_layer("mrcnn_mask")
    kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
    kernel[0, 0, 0, 0] = np.nan
    layer.kernel.assign(kernel)
    path = h5.save_weights(model.keras_model, tmp_path / "mask_rcnn_tiny_0003.h5")
    other = modellib.MaskRCNN("inference", config, str(tmp_path))
    with pytest.raises(ValueError, match=r"mask_rcnn_tiny_0003\.h5.*mrcnn_mask"):
        other.load_weights(path)
    assert other.epoch == 0
