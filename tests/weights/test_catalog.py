"""The manifest: manifest.json's Mask R-CNN files plus the backbones' declared files."""

import os

import keras
import pytest

import backbones
from backbones import registry
from mrcnn.weights import catalog

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def clean_registry(monkeypatch):
    """Registers into a copy of the registry, so tests don't leak names."""
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))


def _builder(inputs, *, first_stride=2):
    return [inputs] * 4


def test_manifest_entries_are_complete_and_cover_the_backbones():
    files = catalog.manifest()["files"]
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
    without = {"small-cnn", "resnet18", "resnet34"}     # no pretrained files
    expected = {f"imagenet-{b}" for b in backbones.available() if b not in without} | {"coco"}
    assert set(names) == expected
    coco = catalog.get_entry("coco")
    assert (coco["file"], coco["size"], coco["backbone"]) == (
        "mask_rcnn_coco.h5", 257557808, "resnet101")
    assert catalog.get_entry("imagenet-resnet50")["md5"] == "a268eb855778b3df3c7506639542a6af"
    with pytest.raises(ValueError, match="known: .*coco"):
        catalog.get_entry("cocoa")


def test_manifest_json_holds_only_mask_rcnn_files():
    """Backbone files live with their backbones, not in manifest.json."""
    import json
    from importlib import resources
    text = resources.files("mrcnn.weights").joinpath(catalog.MANIFEST_NAME).read_text()
    assert [e["kind"] for e in json.loads(text)["files"]] == ["mask_rcnn"]
    resnet = catalog.get_entry("imagenet-resnet101")
    assert (resnet["kind"], resnet["backbone"]) == ("backbone", "resnet101")
    assert resnet == catalog.backbone_entry(backbones.get("resnet101"))


def test_manifest_hashes_and_urls_match_keras_source():
    from keras.src.applications import efficientnet_v2, resnet
    for v in ("b0", "b1", "b2", "b3", "s", "m", "l"):
        e = catalog.get_entry(f"imagenet-efficientnetv2-{v}")
        key = v if v.startswith("b") else "-" + v
        assert e["md5"] == efficientnet_v2.WEIGHTS_HASHES[key][1]
        assert e["url"] == efficientnet_v2.BASE_WEIGHTS_PATH + f"efficientnetv2-{v}_notop.h5"
    e = catalog.get_entry("imagenet-resnet101")
    assert e["md5"] == resnet.WEIGHTS_HASHES["resnet101"][1]
    assert e["url"] == resnet.BASE_WEIGHTS_PATH + e["file"]
    # Keras' own ResNet-50 file has the same name; both are accepted.
    assert catalog.get_entry("imagenet-resnet50")["alternative_md5"] == [
        resnet.WEIGHTS_HASHES["resnet50"][1]]


@pytest.mark.parametrize("entry", [
    "imagenet-efficientnetv2-b0",
    pytest.param("imagenet-resnet50", marks=pytest.mark.slow),
    pytest.param("imagenet-resnet101", marks=pytest.mark.slow),
    *[pytest.param(f"imagenet-efficientnetv2-{v}", marks=pytest.mark.slow)
      for v in ("b1", "b2", "b3", "s", "m", "l")]])
def test_manifest_layer_counts_match_keras_applications(entry):
    e = catalog.get_entry(entry)
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
    for e in catalog.manifest()["files"]:
        assert f"`{e['name']}`" in text and f"`{e['file']}`" in text


def test_backbone_entry_name():
    assert catalog.backbone_entry("EfficientNetV2-B0")["name"] == "imagenet-efficientnetv2-b0"
    assert catalog.backbone_entry_name("EfficientNetV2-B0") == "imagenet-efficientnetv2-b0"
    with pytest.raises(ValueError, match="small-cnn.*load_backbone_weights"):
        catalog.backbone_entry("small-cnn")
    def my_backbone(inputs):
        return [inputs] * 4

    with pytest.raises(ValueError, match="no ImageNet weights are known for backbone "
                                         "'my_backbone'"):
        catalog.backbone_entry(backbones.get(my_backbone))
    with pytest.raises(ValueError, match="no 'imagenet21k' weights .*'resnet50'"):
        catalog.backbone_entry("resnet50", kind="imagenet21k")


def test_a_registered_backbone_adds_its_files(clean_registry):
    declared = {"file": "mini_notop.h5", "url": "https://example.invalid/mini_notop.h5",
                "md5": "0" * 32, "weighted_layers": 4}
    backbones.register("Mini", pretrained={"imagenet": declared,
                                           "imagenet21k": {"file": "mini_21k.h5"}})(_builder)
    entry = catalog.get_entry("imagenet-mini")
    assert entry == {**declared, "name": "imagenet-mini", "kind": "backbone",
                     "backbone": "Mini", "verify": "md5", "size": None, "sha256": None,
                     "layout": None, "notes": "", "description": "imagenet weights of backbone Mini"}
    other = catalog.get_entry("imagenet21k-mini")
    assert (other["file"], other["verify"], other["url"]) == ("mini_21k.h5", "size", None)
    # an unregistered Backbone declares its files too
    loose = registry.Backbone("loose", _builder, pretrained={"imagenet": {"file": "l.h5"}})
    assert catalog.backbone_entry(loose)["name"] == "imagenet-loose"
    assert "imagenet-loose" not in [e["name"] for e in catalog.manifest()["files"]]
    backbones.unregister("Mini")
    with pytest.raises(ValueError, match="imagenet-mini"):
        catalog.get_entry("imagenet-mini")
