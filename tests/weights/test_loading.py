"""Pretrained weights: manifest, local search, offline errors, downloads, loading by name.

Every weight file here is generated in the test, in the real formats: Keras-2
HDF5 with Matterport's names, keras.applications' ResNet and EfficientNetV2
layouts, Keras 3 ``.weights.h5``. Nothing touches the network.
"""

import hashlib
import importlib.util
import os
import socket
import time
import urllib.error

import h5py
import keras
import numpy as np
import pytest

import backbones
import mrcnn.model as modellib
from model_helpers import make_config
from mrcnn.weights import h5 as weights_io, loading as weights

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ helpers
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Empty weight folders, an unreachable proxy, and no DNS beyond localhost."""
    dirs = {k: tmp_path / k for k in ("weights_dir", "keras_home", "cwd")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(dirs["weights_dir"]))
    monkeypatch.setenv("KERAS_HOME", str(dirs["keras_home"]))
    monkeypatch.chdir(dirs["cwd"])
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # discard port: connection refused
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test: network disabled (lookup of {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    return dirs


def randomize(variables, seed):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))


def write_keras2_h5(path, layers):
    """Keras-2 ``save_weights`` layout: every layer listed, weight names ``layer/var:0``.

    Args:
        layers: list of (layer name, [(weight name, array)]); [] for weightless layers.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.8.0"
        for name, items in layers:
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in items])
            for w, arr in items:
                g.create_dataset(w, data=arr)
    return path


def keras2_layers_of(model):
    """(name, [(weight name, array)]) of every layer of a keras.applications model."""
    out = []
    for layer in model.layers:
        names = [f"{layer.name}/{v.name}:0" for v in layer.weights]
        out.append((layer.name, list(zip(names, layer.get_weights()))))
    return out


def tiny_model(tmp_path, mode="inference", **overrides):
    overrides.setdefault("IMAGES_PER_GPU", 1)
    return modellib.MaskRCNN(mode, make_config(**overrides), str(tmp_path / "logs"))


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------- manifest
def test_manifest_entries_are_complete_and_cover_the_backbones():
    files = weights.manifest()["files"]
    fields = {"name", "file", "description", "kind", "backbone", "layout", "url", "size",
              "md5", "sha256", "verify", "weighted_layers", "notes"}
    for e in files:
        assert fields <= set(e), (e["name"], fields - set(e))
        assert e["url"].startswith("https://") and e["url"].endswith("/" + e["file"])
        assert e["verify"] in ("md5", "size")
        if e["verify"] == "md5":
            assert len(e["md5"]) == 32 and int(e["md5"], 16) >= 0
        else:
            assert isinstance(e["size"], int) and e["size"] > 0
        assert e["backbone"] in backbones.available()
    names = [e["name"] for e in files]
    assert len(set(names)) == len(names)
    expected = {f"imagenet-{b}" for b in backbones.available() if b != "small-cnn"} | {"coco"}
    assert set(names) == expected
    coco = weights.get_entry("coco")
    assert (coco["file"], coco["size"], coco["backbone"]) == (
        "mask_rcnn_coco.h5", 257557808, "resnet101")
    assert weights.get_entry("imagenet-resnet50")["md5"] == "a268eb855778b3df3c7506639542a6af"
    with pytest.raises(ValueError, match="known: .*coco"):
        weights.get_entry("cocoa")


def test_manifest_hashes_and_urls_match_keras_source():
    from keras.src.applications import efficientnet_v2, resnet
    for v in ("b0", "b1", "b2", "b3", "s", "m", "l"):
        e = weights.get_entry(f"imagenet-efficientnetv2-{v}")
        key = v if v.startswith("b") else "-" + v
        assert e["md5"] == efficientnet_v2.WEIGHTS_HASHES[key][1]
        assert e["url"] == efficientnet_v2.BASE_WEIGHTS_PATH + f"efficientnetv2-{v}_notop.h5"
    e = weights.get_entry("imagenet-resnet101")
    assert e["md5"] == resnet.WEIGHTS_HASHES["resnet101"][1]
    assert e["url"] == resnet.BASE_WEIGHTS_PATH + e["file"]
    # Keras' own ResNet-50 file has the same name; both are accepted.
    assert weights.get_entry("imagenet-resnet50")["alternative_md5"] == [
        resnet.WEIGHTS_HASHES["resnet50"][1]]


@pytest.mark.parametrize("entry", [
    "imagenet-efficientnetv2-b0",
    pytest.param("imagenet-resnet50", marks=pytest.mark.slow),
    pytest.param("imagenet-resnet101", marks=pytest.mark.slow),
    *[pytest.param(f"imagenet-efficientnetv2-{v}", marks=pytest.mark.slow)
      for v in ("b1", "b2", "b3", "s", "m", "l")]])
def test_manifest_layer_counts_match_keras_applications(entry):
    e = weights.get_entry(entry)
    backbone = e["backbone"]
    app = ({"resnet50": "ResNet50", "resnet101": "ResNet101"}[backbone]
           if backbone.startswith("resnet") else
           "EfficientNetV2" + backbone.split("-")[1].upper())
    model = getattr(keras.applications, app)(include_top=False, weights=None,
                                             input_shape=(64, 64, 3))
    assert sum(1 for layer in model.layers if layer.weights) == e["weighted_layers"]
    if e["layout"] == "keras-applications":
        assert e["file"] == f"{model.name}_notop.h5"


def test_readme_lists_every_manifest_file():
    text = open(os.path.join(REPO, "weights", "README.md"), encoding="utf-8").read()
    assert "mrcnn/weights/manifest.json" in text
    for e in weights.manifest()["files"]:
        assert f"`{e['name']}`" in text and f"`{e['file']}`" in text


def test_imagenet_entry_name():
    assert weights.imagenet_entry_name("EfficientNetV2-B0") == "imagenet-efficientnetv2-b0"
    with pytest.raises(ValueError, match="small-cnn.*load_backbone_weights"):
        weights.imagenet_entry_name("small-cnn")


# ---------------------------------------------------------- local search
def test_search_order_env_dirs_then_keras_cache_then_cwd(offline, tmp_path, monkeypatch):
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV,
                       os.pathsep.join([str(offline["weights_dir"]), str(second)]))
    name = "mask_rcnn_coco.h5"
    places = [offline["weights_dir"] / name, second / name,
              offline["keras_home"] / "models" / name, offline["cwd"] / name]
    (offline["keras_home"] / "models").mkdir()
    assert weights.find_weights("coco") is None
    for p in places:
        p.write_bytes(b"x")
    for p in places:
        assert weights.find_weights("coco") == str(p)
        p.unlink()
    assert weights.find_weights("coco") is None


# ------------------------------------------------------- offline behaviour
def test_missing_coco_weights_error_is_immediate_and_says_what_to_do(offline, tmp_path,
                                                                     monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(weights, "_fetch", no_network)
    model = tiny_model(tmp_path)
    for allow in (False, True):
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError) as info:
            weights.load_named_weights(model, "coco", exclude="heads", allow_download=allow)
        assert time.perf_counter() - start < 10
        msg = str(info.value)
        for part in ("mask_rcnn_coco.h5", str(offline["weights_dir"]),
                     str(offline["keras_home"] / "models"), str(offline["cwd"]),
                     weights.WEIGHTS_DIR_ENV, "allow_download=True",
                     "python weights/download.py coco",
                     "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/"):
            assert part in msg, (part, msg)
        assert ("Connection refused" in msg) == allow
    assert os.listdir(offline["weights_dir"]) == []


def test_download_through_unreachable_proxy_fails_fast_and_leaves_nothing(offline):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        weights.locate_weights("imagenet-efficientnetv2-b0", allow_download=True, verbose=0)
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert "efficientnetv2-b0_notop.h5" in msg and "failed" in msg
    # the proxy was used (connection refused), not a direct lookup of the host
    assert "network disabled" not in msg and "refused" in msg.lower(), msg
    assert os.listdir(offline["weights_dir"]) == []

    start = time.perf_counter()
    target = offline["cwd"] / "mask_rcnn_coco.h5"
    with pytest.raises(OSError, match="mask_rcnn_coco.h5"):
        weights.download_trained_weights(str(target), verbose=0)
    assert time.perf_counter() - start < 10
    assert os.listdir(offline["cwd"]) == []


# ---------------------------------------------------------------- download
def fake_manifest(monkeypatch, **entry):
    base = {"name": "test-file", "file": "test.h5", "description": "test file",
            "kind": "backbone", "backbone": "small-cnn", "layout": "matterport",
            "url": "https://example.invalid/test.h5", "size": None, "md5": None,
            "sha256": None, "verify": "md5", "weighted_layers": None, "notes": ""}
    base.update(entry)
    monkeypatch.setattr(weights, "manifest", lambda: {"files": [base]})
    return base


def test_download_writes_atomically_and_checks_md5(tmp_path, monkeypatch):
    source = tmp_path / "source.h5"
    write_keras2_h5(source, [("conv", [("conv/kernel:0", np.arange(6.0).reshape(2, 3))]),
                             ("relu", [])])
    data = source.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    out = tmp_path / "out"
    fake_manifest(monkeypatch, md5=md5, weighted_layers=1)
    path = weights.download_weights("test-file", directory=str(out), url=source.as_uri(),
                                    verbose=0)
    assert path == str(out / "test.h5") and (out / "test.h5").read_bytes() == data
    assert os.listdir(out) == ["test.h5"]
    check = weights.verify_file(path, "test-file")
    assert check["ok"] and check["md5"] == md5 and check["size"] == len(data)
    assert check["sha256"] == hashlib.sha256(data).hexdigest() and not check["warnings"]

    fake_manifest(monkeypatch, md5="0" * 32, weighted_layers=3)
    check = weights.verify_file(path, "test-file")
    assert not check["ok"] and md5 in check["problems"][0]
    assert check["warnings"] == ["1 layers hold weights, the manifest expects 3"]
    (out / "test.h5").unlink()
    with pytest.raises(ValueError, match="does not match .*deleted"):
        weights.download_weights("test-file", directory=str(out), url=source.as_uri(),
                                 verbose=0)
    assert os.listdir(out) == []

    fake_manifest(monkeypatch, verify="size", size=len(data) + 1)
    with pytest.raises(ValueError, match=f"{len(data):,} bytes, expected {len(data) + 1:,}"):
        weights.download_weights("test-file", directory=str(out), url=source.as_uri(),
                                 verbose=0)
    assert os.listdir(out) == []


def load_script():
    spec = importlib.util.spec_from_file_location(
        "weights_download", os.path.join(REPO, "weights", "download.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_download_script_list_and_verify(offline, capsys):
    script = load_script()
    assert script.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "imagenet-efficientnetv2-l" in out and "mask_rcnn_coco.h5" in out
    assert script.expand_names(["imagenet", "coco"])[-1] == "coco"
    assert len(script.expand_names(["all"])) == len(weights.manifest()["files"])
    (offline["weights_dir"] / "mask_rcnn_coco.h5").write_bytes(b"not the real file")
    assert script.main(["coco", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 17 bytes, expected 257,557,808" in out
    assert script.main(["imagenet-resnet50", "--verify"]) == 1
    assert "missing" in capsys.readouterr().out


# ------------------------------------------------------------------ loading
def test_coco_by_name_into_another_num_classes(offline, tmp_path):
    coco_model = tiny_model(tmp_path, NUM_CLASSES=81)
    randomize(coco_model.keras_model.weights, seed=1)
    weights_io.save_weights(coco_model.keras_model,
                            str(offline["weights_dir"] / "mask_rcnn_coco.h5"))
    model = tiny_model(tmp_path, NUM_CLASSES=4)
    before = model.keras_model.get_layer("mrcnn_class_logits").get_weights()
    report = weights.load_named_weights(model, "COCO", exclude="heads")
    assert report["path"] == str(offline["weights_dir"] / "mask_rcnn_coco.h5")
    # the class-specific layers that hold weights ("mrcnn_bbox" is a reshape)
    assert sorted(report["excluded"]) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert not report["missing"] and not report["shape_mismatch"]
    for name in ("fpn_c4p4", "mrcnn_class_conv1", "mrcnn_mask_conv3", "scnn_s2_conv1"):
        assert_same(model.keras_model.get_layer(name).get_weights(),
                    coco_model.keras_model.get_layer(name).get_weights())
    assert_same(model.keras_model.get_layer("rpn_model").get_weights(),
                coco_model.keras_model.get_layer("rpn_model").get_weights())
    assert_same(model.keras_model.get_layer("mrcnn_class_logits").get_weights(), before)


def test_coco_file_without_matching_layers_is_rejected(offline, tmp_path):
    write_keras2_h5(offline["weights_dir"] / "mask_rcnn_coco.h5",
                    [("something_else", [("something_else/kernel:0", np.ones((2, 2)))])])
    with pytest.raises(ValueError, match="no layer of the model"):
        weights.load_named_weights(tiny_model(tmp_path), "coco")


def test_last_loads_the_newest_checkpoint(tmp_path):
    model = tiny_model(tmp_path)
    logs = tmp_path / "logs"
    randomize(model.keras_model.weights, seed=2)
    old = weights_io.save_weights(model.keras_model,
                                  str(logs / "tiny20240101T0000" / "mask_rcnn_tiny_0009.h5"))
    randomize(model.keras_model.weights, seed=3)
    expected = model.keras_model.get_weights()
    new = weights_io.save_weights(model.keras_model,
                                  str(logs / "tiny20250101T0000" / "mask_rcnn_tiny_0002.h5"))
    randomize(model.keras_model.weights, seed=4)
    report = weights.load_named_weights(model, "last")
    assert report["path"] == new != old
    assert not report["missing"] and not report["shape_mismatch"]
    assert_same(model.keras_model.get_weights(), expected)


def test_keras3_weights_file_path_loads_by_structure(tmp_path):
    a, b = tiny_model(tmp_path), tiny_model(tmp_path)
    randomize(a.keras_model.weights, seed=5)
    path = str(tmp_path / "model.weights.h5")
    a.keras_model.save_weights(path)
    report = weights.load_named_weights(b, path)
    assert report["path"] == path
    assert_same(b.keras_model.get_weights(), a.keras_model.get_weights())


def test_imagenet_for_a_backbone_without_one(tmp_path):
    with pytest.raises(ValueError, match="no ImageNet weights are known for backbone 'small-cnn'"):
        weights.load_named_weights(tiny_model(tmp_path), "imagenet")


def test_missing_imagenet_file_names_the_keras_file(offline, tmp_path):
    model = tiny_model(tmp_path, BACKBONE="resnet50")
    with pytest.raises(FileNotFoundError,
                       match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        weights.load_named_weights(model, "imagenet")


@pytest.fixture(scope="module")
def resnet50_model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("r50"), BACKBONE="resnet50")


def test_imagenet_resnet50_file_with_matterport_names(offline, resnet50_model):
    model = resnet50_model
    rng = np.random.default_rng(6)
    names = weights.backbone_weight_layers(model)
    assert len(names) == weights.get_entry("imagenet-resnet50")["weighted_layers"]
    layers = [("input_1", [])]
    expected = {}
    for name in names:
        layer = model.keras_model.get_layer(name)
        arrays = [rng.normal(size=tuple(v.shape)).astype("float32") for v in layer.weights]
        expected[name] = arrays
        layers.append((name, [(f"{name}/{v.name}:0", a) for v, a in zip(layer.weights, arrays)]))
    write_keras2_h5(offline["weights_dir"] / weights.get_entry("imagenet-resnet50")["file"],
                    layers)
    head_before = model.keras_model.get_layer("fpn_c5p5").get_weights()
    report = weights.load_named_weights(model, "imagenet")
    assert report["method"] == "by name" and report["backbone_not_loaded"] == []
    for name in ("conv1", "bn_conv1", "res4f_branch2c", "bn5a_branch1"):
        assert_same(model.keras_model.get_layer(name).get_weights(), expected[name])
    assert_same(model.keras_model.get_layer("fpn_c5p5").get_weights(), head_before)


def test_imagenet_resnet50_file_with_keras_applications_names(offline, resnet50_model):
    reference = keras.applications.ResNet50(include_top=False, weights=None,
                                            input_shape=(64, 64, 3))
    randomize(reference.weights, seed=7)
    (offline["keras_home"] / "models").mkdir()
    write_keras2_h5(offline["keras_home"] / "models" /
                    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    keras2_layers_of(reference))
    report = weights.load_named_weights(resnet50_model, "imagenet")
    assert report["method"] == "by name (renamed)"
    assert report["backbone_not_loaded"] == [] and not report["shape_mismatch"]
    pairs = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn",
             "res2a_branch1": "conv2_block1_0_conv", "bn2a_branch1": "conv2_block1_0_bn",
             "res3b_branch2b": "conv3_block2_2_conv", "bn4f_branch2c": "conv4_block6_3_bn",
             "res5c_branch2a": "conv5_block3_1_conv"}
    for ours, theirs in pairs.items():
        assert weights.keras_resnet_to_matterport(theirs) == ours
        assert_same(resnet50_model.keras_model.get_layer(ours).get_weights(),
                    reference.get_layer(theirs).get_weights())
    assert weights.keras_resnet_to_matterport("conv4_block23_3_bn") == "bn4w_branch2c"
    assert weights.keras_resnet_to_matterport("pool1_pad") is None


def test_backbone_file_of_another_network_is_rejected(tmp_path, resnet50_model):
    small = tiny_model(tmp_path)
    path = weights_io.save_weights(small.keras_model, str(tmp_path / "small.h5"))
    with pytest.raises(ValueError, match="holds none of the 106 weight layers of backbone "
                                         "'resnet50'"):
        weights.load_backbone_weights(resnet50_model, path)


@pytest.fixture(scope="module")
def effnet_b0(tmp_path_factory):
    """(mrcnn b0 model, keras.applications B0 with random weights)."""
    model = tiny_model(tmp_path_factory.mktemp("b0"), BACKBONE="efficientnetv2-b0")
    # As Keras downloads it: with the preprocessing layers (which hold no weights).
    reference = keras.applications.EfficientNetV2B0(include_top=False, weights=None,
                                                    input_shape=(64, 64, 3),
                                                    include_preprocessing=True)
    randomize(reference.weights, seed=8)
    return model, reference


def inner_layers_match(model, reference):
    sub = model.keras_model.get_layer("efficientnetv2-b0")
    count = 0
    for layer in sub.layers:
        if layer.weights:
            assert_same(layer.get_weights(), reference.get_layer(layer.name).get_weights())
            count += 1
    return count


def test_imagenet_efficientnet_file_loads_into_the_nested_backbone(offline, effnet_b0):
    model, reference = effnet_b0
    randomize(model.keras_model.weights, seed=9)
    write_keras2_h5(offline["weights_dir"] / "efficientnetv2-b0_notop.h5",
                    keras2_layers_of(reference))
    fpn_before = model.keras_model.get_layer("fpn_c3p3").get_weights()
    report = weights.load_named_weights(model, "imagenet")
    assert report["method"] == "by name" and report["backbone_not_loaded"] == []
    assert inner_layers_match(model, reference) == 150
    assert_same(model.keras_model.get_layer("fpn_c3p3").get_weights(), fpn_before)


def test_backbone_file_with_other_names_loads_by_layer_order(tmp_path, effnet_b0):
    model, reference = effnet_b0
    randomize(model.keras_model.weights, seed=10)
    layers = [(f"automl_{i}", [(f"automl_{i}/w{j}:0", a) for j, (_, a) in enumerate(items)])
              for i, (_, items) in enumerate(keras2_layers_of(reference))]
    path = write_keras2_h5(tmp_path / "efficientnetv2-b0-imagenet21k.h5", layers)
    report = weights.load_backbone_weights(model, path)
    assert report["method"] == "by order"
    assert inner_layers_match(model, reference) == 150

    short = write_keras2_h5(tmp_path / "short.h5", layers[:-3])
    with pytest.raises(ValueError, match="does not match backbone 'efficientnetv2-b0'"):
        weights.load_backbone_weights(model, short)


def test_backbone_keras3_weights_file(tmp_path, effnet_b0):
    model, _ = effnet_b0
    source = tiny_model(tmp_path, BACKBONE="efficientnetv2-b0")
    sub = source.keras_model.get_layer("efficientnetv2-b0")
    randomize(sub.weights, seed=11)
    path = str(tmp_path / "b0.weights.h5")
    sub.save_weights(path)
    report = weights.load_backbone_weights(model, path)
    assert report["method"] == "structure" and report["path"] == path
    assert_same(model.keras_model.get_layer("efficientnetv2-b0").get_weights(),
                sub.get_weights())


def test_model_load_weights_accepts_names(offline, tmp_path):
    """MaskRCNN.load_weights delegates "coco"/"imagenet"/"last"/paths to load_named_weights."""
    coco_model = tiny_model(tmp_path, NUM_CLASSES=81)
    weights_io.save_weights(coco_model.keras_model,
                            str(offline["weights_dir"] / "mask_rcnn_coco.h5"))
    model = tiny_model(tmp_path, mode="training")
    report = model.load_weights("coco", exclude="heads")
    assert sorted(report["excluded"]) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert model.epoch == 0
    with pytest.raises(FileNotFoundError, match="mask_rcnn_coco.h5"):
        os.remove(offline["weights_dir"] / "mask_rcnn_coco.h5")
        model.load_weights("coco", exclude="heads")
