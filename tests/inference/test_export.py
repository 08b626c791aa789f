"""mrcnn.inference.export / exported: exported models detect as the library does.

A small model (small-cnn backbone, 128x128 input) with pinned heads
(`model_helpers.confident_heads`: every ROI a detection with a full-box
mask) is exported; the exported function's raw outputs are checked against
the inference graph's own outputs by hand (pixel boxes, each detection's
class mask), and `load_exported(...).detect` against `MaskRCNN.detect`
(boxes to 1e-3, masks to 1 pixel per instance).
"""

import json
import os
import re
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
from model_helpers import confident_heads, make_config

import mrcnn.model as modellib
from mrcnn.inference import export as export_lib
from mrcnn.inference.export import ServingInputs, ServingOutputs, export_model
from mrcnn.inference.exported import find_format, load_exported
from mrcnn.layers.batch_norm_fold import fold_batch_norms

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_saved_model = pytest.mark.skipif(
    "tf_saved_model" not in export_lib.SUPPORTED[BACKEND],
    reason=f"no SavedModel export from the {BACKEND} backend (tested: the error)")


def _config(**overrides):
    settings = dict(IMAGES_PER_GPU=2, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
                    CLASS_NAMES=["BG", "a", "b", "c"])
    settings.update(overrides)
    return make_config(**settings)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    m = modellib.MaskRCNN("inference", _config(), str(tmp_path_factory.mktemp("logs")))
    return confident_heads(m, class_id=2, score=0.7, mask_probability=0.8)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8)
            for shape in ((100, 120, 3), (128, 90, 3), (60, 128))]   # the last one grayscale


def _graph_reference(model, images):
    """The inference graph's detections and masks for `images`, turned into the exported
    outputs by hand: pixel boxes, each detection's class channel of the masks."""
    molded, metas, _ = model.mold_inputs(images)
    out = model.keras_model.predict_on_batch(list(modellib.molding.pad_batch(
        molded, metas, model.config.BATCH_SIZE)))
    detections, masks = np.asarray(out[0]), np.asarray(out[3])
    h, w = model.config.IMAGE_SHAPE[:2]
    class_ids = detections[..., 4].astype(int)
    boxes = detections[..., :4] * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1]
    b, n = class_ids.shape
    chosen = masks[np.arange(b)[:, None], np.arange(n)[None, :], :, :, class_ids]
    found = class_ids > 0
    return {"boxes": np.where(found[..., None], boxes, 0), "class_ids": class_ids,
            "scores": np.where(found, detections[..., 5], 0),
            "masks": np.where(found[..., None, None], chosen, 0),
            "num_detections": found.sum(1)}


def _assert_same_detections(expected, actual):
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        n = len(e["class_ids"])
        assert n > 0 and len(a["class_ids"]) == n
        np.testing.assert_array_equal(a["class_ids"], e["class_ids"])
        np.testing.assert_allclose(a["scores"], e["scores"], atol=1e-5)
        assert np.abs(a["rois"] - e["rois"]).max() <= 1
        assert a["masks"].shape == e["masks"].shape
        differ = (a["masks"] != e["masks"]).reshape(-1, n).sum(0)
        assert differ.max() <= 1, differ                 # at most 1 pixel per instance
        np.testing.assert_allclose(a["soft_masks"], e["soft_masks"], atol=1e-4)


def _check_export(model, images, path):
    """Raw outputs of the export == the graph's by hand; detect == MaskRCNN.detect."""
    exported = load_exported(path)
    assert exported.config.CLASS_NAMES == ["BG", "a", "b", "c"]
    fitted, windows = exported.fit_inputs(images[:2])
    raw = exported.run(fitted, windows)
    expected = _graph_reference(model, images[:2])
    assert set(raw) == set(expected)
    np.testing.assert_allclose(raw["boxes"], expected["boxes"], atol=1e-3)
    np.testing.assert_array_equal(raw["class_ids"], expected["class_ids"])
    np.testing.assert_array_equal(raw["num_detections"], expected["num_detections"])
    np.testing.assert_allclose(raw["scores"], expected["scores"], atol=1e-5)
    np.testing.assert_allclose(raw["masks"], expected["masks"], atol=1e-4)
    assert (raw["class_ids"] == 2).any()                  # the pinned heads' class
    _assert_same_detections(model.detect(images, soft_masks=True),
                            exported.detect(images, soft_masks=True))   # 2 batches, one padded
    return exported


@needs_saved_model
def test_saved_model_detects_like_the_library(model, images, tmp_path):
    path = tmp_path / "exported"
    info = export_model(model, path, format="tf_saved_model")
    meta = json.load(open(path / "mrcnn_export.json"))
    assert meta == json.loads(json.dumps(info))
    assert meta["config"]["IMAGE_SHAPE"] == [128, 128, 3] and meta["backend"] == BACKEND
    assert meta["config"]["MEAN_PIXEL"] == [123.7, 116.8, 103.9]
    assert set(meta["signature"]["outputs"]) == set(export_lib.SIGNATURE["outputs"])
    assert find_format(path) == "tf_saved_model"
    _check_export(model, images, path)

    # what a user without mrcnn sees: TensorFlow's serving signature
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    assert {k: tuple(v.shape) for k, v in inputs.items()} == {"images": (2, 128, 128, 3),
                                                               "windows": (2, 4)}
    assert {k: tuple(v.shape) for k, v in serve.structured_outputs.items()} == {
        "boxes": (2, 8, 4), "class_ids": (2, 8), "scores": (2, 8), "masks": (2, 8, 28, 28),
        "num_detections": (2,)}


def test_keras_file_round_trips_and_detects_identically(model, images, tmp_path):
    path = tmp_path / "model.keras"
    export_model(model, path, format="keras")
    assert os.path.exists(str(path) + ".json")
    loaded = keras.saving.load_model(path)
    fold_batch_norms(loaded)        # as the library's model (and load_exported) fold them
    molded, metas, _ = model.mold_inputs(images[:2])
    for a, b in zip(model.keras_model.predict_on_batch([molded, metas]),
                    loaded.predict_on_batch([molded, metas])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    twin = modellib.MaskRCNN("inference", model.config, model.model_dir)
    twin.keras_model = loaded
    for a, b in zip(model.detect(images, soft_masks=True), twin.detect(images, soft_masks=True)):
        for key in ("rois", "class_ids", "scores", "masks", "soft_masks"):
            np.testing.assert_array_equal(a[key], b[key])
    exported = load_exported(path)
    assert exported.format == "keras"
    _assert_same_detections(model.detect(images, soft_masks=True),
                            exported.detect(images, soft_masks=True))


def test_an_export_of_a_grown_mask_box_model_pastes_as_the_library(images, tmp_path):
    """MASK_BOX_SCALE travels in the export's settings: the exported model pastes each mask
    into the grown box, as `MaskRCNN.detect` does (the masks reach past the rois)."""
    m = modellib.MaskRCNN("inference", _config(MASK_BOX_SCALE=1.5), str(tmp_path / "logs"))
    confident_heads(m, class_id=2, score=0.7, mask_probability=0.8)
    path = tmp_path / "grown.keras"
    export_model(m, path, format="keras")
    exported = load_exported(path)
    assert exported.config.MASK_BOX_SCALE == 1.5
    ours, theirs = m.detect(images, soft_masks=True), exported.detect(images, soft_masks=True)
    _assert_same_detections(ours, theirs)
    r = ours[0]
    outside = 0
    for k, (y1, x1, y2, x2) in enumerate(r["rois"]):
        inside = np.zeros(r["masks"].shape[:2], bool)
        inside[y1:y2, x1:x2] = True
        outside += int((r["masks"][..., k] & ~inside).any())
    assert len(r["rois"]) and outside == len(r["rois"])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend is enough for the fresh "
                    "process (35 s on JAX); the in-process round trip runs on every backend")
def test_keras_file_loads_in_a_fresh_process_with_the_library_imported(model, tmp_path):
    path = tmp_path / "model.keras"
    export_model(model, path, format="keras")
    code = ("import keras, mrcnn.model; m = keras.saving.load_model(%r); "
            "print(m.name, [tuple(t.shape) for t in m.outputs][0])" % str(path))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "mask_rcnn (2, 8, 6)"


@pytest.mark.skipif(BACKEND != "tensorflow", reason="ONNX export is measured on TensorFlow only")
def test_onnx_detects_like_the_library(model, images, tmp_path):
    """The detection layer picks classes with `first_argmax` (not keras.ops.argmax, whose
    Bitcast/BitwiseAnd tf2onnx cannot convert), so the whole graph converts."""
    pytest.importorskip("tf2onnx", reason="ONNX export needs tf2onnx (pip install tf2onnx)")
    pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime")
    path = tmp_path / "model.onnx"
    export_model(model, path, format="onnx")
    assert json.load(open(str(path) + ".json"))["format"] == "onnx"
    assert export_lib.unsupported_onnx_ops(str(path)) == {}
    _check_export(model, images, path)


def test_unsupported_onnx_ops_names_ops_missing_from_the_opset(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Bitcast", ["a"], ["b"], name="det/Bitcast"),
             helper.make_node("BitwiseAnd", ["b", "b"], ["y"], name="det/And")]  # opset >= 18
    graph = helper.make_graph(nodes, "g", [x], [y])
    for opset, expected in ((15, {"Bitcast": "det/Bitcast", "BitwiseAnd": "det/And"}),
                            (18, {"Bitcast": "det/Bitcast"})):
        path = str(tmp_path / f"m{opset}.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
        assert export_lib.unsupported_onnx_ops(path) == expected


def test_serving_layers_by_hand():
    from helpers import run_layer_test

    images = np.full((2, 4, 6, 3), 100.0, np.float32)
    windows = np.array([[0, 0, 4, 6], [1, 2, 3, 5]], np.float32)
    molded, meta = run_layer_test(ServingInputs([10.0, 20.0, 30.0], (4, 6, 3), 3),
                                  [images, windows])
    np.testing.assert_allclose(molded[0, 0, 0], [90, 80, 70])
    np.testing.assert_allclose(meta[1], [0, 4, 6, 3, 4, 6, 3, 1, 2, 3, 5, 1, 1, 1, 1])

    detections = np.zeros((1, 3, 6), np.float32)
    detections[0, 0] = [0.0, 0.5, 1.0, 1.0, 2, 0.9]
    detections[0, 1] = [0.25, 0.0, 0.5, 0.2, 1, 0.6]        # row 2 stays empty
    masks = np.random.default_rng(1).random((1, 3, 2, 2, 3)).astype(np.float32)
    boxes, class_ids, scores, class_masks, count = run_layer_test(
        ServingOutputs((5, 11)), [detections, masks])
    # Matterport's denormalisation: box * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1]
    np.testing.assert_allclose(boxes[0], [[0, 5, 5, 11], [1, 0, 3, 3], [0, 0, 0, 0]], atol=1e-5)
    np.testing.assert_array_equal(class_ids, [[2, 1, 0]])
    np.testing.assert_allclose(scores, [[0.9, 0.6, 0.0]], atol=1e-6)
    np.testing.assert_allclose(class_masks[0, 0], masks[0, 0, :, :, 2], atol=1e-6)
    np.testing.assert_allclose(class_masks[0, 1], masks[0, 1, :, :, 1], atol=1e-6)
    assert not np.asarray(class_masks)[0, 2].any()
    np.testing.assert_array_equal(count, [2])


# ---------------------------------------------------------------- bad input
def test_export_refuses_bad_requests_before_writing(model, tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_backend", lambda: "tensorflow")   # every format allowed
    with pytest.raises(ValueError, match=r"unknown export format 'savedmodel'; choose one of "
                                         r"\('tf_saved_model', 'onnx', 'keras'\)"):
        export_model(model, tmp_path / "a", format="savedmodel")
    with pytest.raises(TypeError, match=r"model must be a mrcnn MaskRCNN \(not its "
                                        r"keras_model\), got MaskRCNNModel"):
        export_model(model.keras_model, tmp_path / "a", format="keras")
    training = modellib.MaskRCNN("training", make_config(IMAGES_PER_GPU=1), str(tmp_path))
    with pytest.raises(ValueError, match="export needs a model built with mode='inference', "
                                         "got mode 'training'"):
        export_model(training, tmp_path / "a", format="keras")
    (tmp_path / "taken.keras").write_text("")
    with pytest.raises(FileExistsError, match="taken.keras' exists; choose a new path or pass "
                                              "overwrite=True"):
        export_model(model, tmp_path / "taken.keras", format="keras")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileExistsError, match="is a folder that holds no SavedModel"):
        export_model(model, tmp_path / "folder", format="tf_saved_model", overwrite=True)
    with pytest.raises(ValueError, match=r"a '.keras' export needs a path ending in '.keras'"):
        export_model(model, tmp_path / "model.h5", format="keras")
    with pytest.raises(ValueError, match=r"class_names has 2 names for NUM_CLASSES=4"):
        export_model(model, tmp_path / "b.keras", format="keras", class_names=["BG", "x"])
    assert sorted(os.listdir(tmp_path)) == ["folder", "taken.keras"]


def test_export_overwrites_only_when_asked(model, tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    export_model(model, path, format="keras")
    export_model(model, path, format="keras", overwrite=True, class_names=list("0abc"))
    assert json.load(open(str(path) + ".json"))["config"]["CLASS_NAMES"] == list("0abc")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    before = open(path, "rb").read()
    with pytest.raises(OSError, match="disk full"):
        export_model(model, path, format="keras", overwrite=True)
    assert open(path, "rb").read() == before                   # the earlier export is intact
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.keras.json"]


@pytest.mark.parametrize("backend,format", [("torch", "tf_saved_model"), ("torch", "onnx"),
                                            ("jax", "onnx")])
def test_export_names_the_backend_and_the_alternatives(model, tmp_path, monkeypatch, backend,
                                                       format):
    monkeypatch.setattr(export_lib, "_backend", lambda: backend)
    works = " or ".join(repr(f) for f in export_lib.SUPPORTED[backend])
    with pytest.raises(ValueError, match=rf"format '{format}' cannot be exported from the "
                                         rf"'{backend}' backend \(.+\); from '{backend}' use "
                                         rf"format {works}, or export with "
                                         rf"KERAS_BACKEND=tensorflow"):
        export_model(model, tmp_path / "x", format=format)


def test_onnx_needs_a_float32_model(tmp_path, monkeypatch):
    monkeypatch.setattr(export_lib, "_backend", lambda: "tensorflow")
    stub = types.SimpleNamespace(mode="inference", keras_model=None,
                                 config=types.SimpleNamespace(MIXED_PRECISION="bfloat16",
                                                              BACKBONE="resnet50"))
    with pytest.raises(ValueError, match="ONNX export needs a float32 model; this one has "
                                         "MIXED_PRECISION='bfloat16'"):
        export_model(stub, tmp_path / "m.onnx", format="onnx")


def test_float32_twin_holds_the_weights_in_float32(model, images, tmp_path):
    half = modellib.MaskRCNN("inference", _config(MIXED_PRECISION="bfloat16"), str(tmp_path))
    half.keras_model.set_weights(model.keras_model.get_weights())
    assert half.keras_model.get_layer("mrcnn_mask_conv1").compute_dtype == "bfloat16"
    twin = export_lib.float32_twin(half)
    assert twin.config.MIXED_PRECISION is None and half.config.MIXED_PRECISION == "bfloat16"
    assert {layer.compute_dtype for layer in twin.keras_model.layers
            if layer.weights} == {"float32"}
    for a, b in zip(twin.keras_model.get_weights(), model.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    _assert_same_detections(model.detect(images[:2], soft_masks=True),
                            twin.detect(images[:2], soft_masks=True))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="ONNX export is measured on TensorFlow only")
def test_onnx_export_of_an_auto_model_that_chose_16_bits_is_float32(model, images, tmp_path,
                                                                     monkeypatch):
    """MIXED_PRECISION = "auto" (the default) picks bfloat16 on some machines; ONNX export
    then writes the float32 twin instead of refusing (an explicit 16-bit setting still
    raises: test_onnx_needs_a_float32_model)."""
    pytest.importorskip("tf2onnx", reason="ONNX export needs tf2onnx (pip install tf2onnx)")
    pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime")
    auto = modellib.MaskRCNN("inference", _config(MIXED_PRECISION="auto"), str(tmp_path))
    auto.keras_model.set_weights(model.keras_model.get_weights())
    built = []
    real_twin = export_lib.float32_twin
    monkeypatch.setattr(export_lib, "resolve",
                        lambda setting, backbone=None: "bfloat16" if setting == "auto"
                        else setting or None)
    monkeypatch.setattr(export_lib, "float32_twin",
                        lambda m: built.append((m, real_twin(m))) or built[-1][1])
    path = tmp_path / "auto.onnx"
    export_model(auto, path, format="onnx")
    assert [m for m, _ in built] == [auto] and built[0][1].config.MIXED_PRECISION is None
    _check_export(model, images, path)


def test_load_exported_refuses_what_is_not_an_export(model, images, tmp_path):
    with pytest.raises(FileNotFoundError, match="no exported model at"):
        load_exported(tmp_path / "missing.onnx")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder without saved_model.pb"):
        load_exported(tmp_path / "folder")
    (tmp_path / "weights.h5").write_text("")
    with pytest.raises(ValueError, match="is not an exported model: expected a SavedModel"):
        load_exported(tmp_path / "weights.h5")
    path = tmp_path / "m.keras"
    export_model(model, path, format="keras")
    exported = load_exported(path)
    with pytest.raises(ValueError, match=r"images must be \[H, W, 3\] arrays, got shape "
                                         r"\(10, 10, 4\)"):
        exported.detect([np.zeros((10, 10, 4), np.uint8)])
    with pytest.raises(ValueError, match="got 3 images for an export with batch size 2"):
        exported.run(*exported.fit_inputs(images))
    os.remove(str(path) + ".json")
    with pytest.raises(FileNotFoundError, match=r"m.keras.json' is missing: the metadata"):
        load_exported(path)


def test_model_export_facade(model, tmp_path):
    info = model.export(str(tmp_path / "m.keras"), format="keras")
    assert info["format"] == "keras" and os.path.exists(tmp_path / "m.keras")


@pytest.mark.slow
@needs_saved_model
def test_latency_benchmark_runs(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "export_latency", os.path.join(ROOT, "benchmarks", "export_latency.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--backbone", "small-cnn", "--size", "128", "--steps", "1",
                       "--out", str(tmp_path)])
    assert [r[0] for r in rows] == ["library (MaskRCNN.detect)", "tf_saved_model (load_exported)"]
    table = capsys.readouterr().out
    last = table.rstrip().splitlines()[-1]
    assert last.startswith("tf_saved_model (load_exported)")
    assert re.search(r"(same|box <= [01] px, mask <= [01] px)$", last), last


def test_the_keras_model_itself_round_trips_through_a_keras_file(model, tmp_path):
    """MaskRCNNModel (the facade's keras_model) is registered, so Keras' own save/load of
    it works as for any Keras model and gives the same weights."""
    path = str(tmp_path / "inference.keras")
    model.keras_model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded).__name__ == "MaskRCNNModel"
    saved = {w.path: keras.ops.convert_to_numpy(w) for w in model.keras_model.weights}
    for w in loaded.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), saved[w.path])
    assert len(loaded.weights) == len(saved)
