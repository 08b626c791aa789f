"""Tests for backbones.registry (pure Python; no Keras model is built)."""

import subprocess
import sys

import pytest

from backbones import registry
from backbones.registry import Backbone

# Backend-independent: the backbone registry is pure Python; no Keras model is built.
pytestmark = pytest.mark.backend_independent


@pytest.fixture
def clean_registry(monkeypatch):
    """Registers into a copy of the registry, so tests don't leak names."""
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))


def _fake_builder(inputs, *, first_stride=2, scale=1):
    # Stand-in for a Keras builder: returns "feature maps" as tuples.
    return [(inputs, first_stride, scale, level) for level in (2, 3, 4, 5)]


def test_builtins_registered():
    assert registry.available() == sorted([
        "efficientnetv2-b0", "efficientnetv2-b1", "efficientnetv2-b2",
        "efficientnetv2-b3", "efficientnetv2-l", "efficientnetv2-m",
        "efficientnetv2-s", "resnet101", "resnet18", "resnet34", "resnet50", "small-cnn"])


def test_register_get_available(clean_registry):
    groups = {"5+": r"tiny_s5.*", "all": r"tiny_.*"}
    returned = registry.register("TinyNet", strides=(4, 8, 16, 32),
                                 channels=(8, 16, 32, 64),
                                 layer_groups=groups)(_fake_builder)
    assert returned is _fake_builder  # decorator returns the builder
    assert "TinyNet" in registry.available()
    assert registry.available() == sorted(registry.available())
    b = registry.get("TinyNet")
    assert isinstance(b, Backbone)
    assert b.name == "TinyNet"
    assert b.builder is _fake_builder
    assert b.channels == (8, 16, 32, 64)
    assert b.layer_groups == groups
    assert b.strides() == (4, 8, 16, 32)
    assert b.strides(first_stride=1) == (2, 4, 8, 16)
    assert b.build("img") == [("img", 2, 1, 2), ("img", 2, 1, 3),
                              ("img", 2, 1, 4), ("img", 2, 1, 5)]
    assert b.build("img", first_stride=1, scale=3)[0] == ("img", 1, 3, 2)
    assert b.accepts("scale") and not b.accepts("zero_init_residual")
    with pytest.raises(ValueError, match=r"'TinyNet' does not accept the option\(s\) "
                                         r"zero_init_residual"):
        b.build("img", zero_init_residual=True)


def test_case_insensitive(clean_registry):
    registry.register("TinyNet")(_fake_builder)
    assert registry.get("tinynet") is registry.get("TINYNET")
    assert registry.get("ResNet101") is registry.get("resnet101")
    assert registry.get("EfficientNetV2-B0").name == "efficientnetv2-b0"


def test_duplicate_rejected(clean_registry):
    registry.register("TinyNet")(_fake_builder)
    with pytest.raises(ValueError, match="tinynet"):
        registry.register("tinynet")(_fake_builder)
    with pytest.raises(ValueError, match="resnet50"):
        registry.register("resnet50")(_fake_builder)


def test_unknown_name_lists_available():
    with pytest.raises(ValueError) as info:
        registry.get("resnet152")
    message = str(info.value)
    assert "resnet152" in message
    for name in registry.available():
        assert name in message


def test_callable_wrapped_anonymously():
    def my_backbone(inputs):
        return ["c2", "c3", "c4", "c5"]

    b = registry.get(my_backbone)
    assert b.name == "my_backbone"
    assert b.strides() == (4, 8, 16, 32)
    assert b.strides(1) == (2, 4, 8, 16)
    assert b.channels is None
    assert b.layer_groups is None
    assert b.build("img") == ["c2", "c3", "c4", "c5"]
    # A builder without a first_stride argument cannot honor first_stride=1.
    with pytest.raises(ValueError, match="first_stride"):
        b.build("img", first_stride=1)
    # Not registered by get().
    assert "my_backbone" not in registry.available()


def test_callable_with_first_stride_and_matterport_five_outputs():
    def with_c1(inputs, first_stride=2):
        return ["c1", "c2", first_stride, "c4", "c5"]

    assert registry.get(with_c1).build("x", first_stride=1) == [
        "c2", 1, "c4", "c5"]

    def three(inputs):
        return ["a", "b", "c"]

    with pytest.raises(ValueError, match="got 3"):
        registry.get(three).build("x")


def test_get_backbone_instance_and_bad_types():
    b = Backbone("x", _fake_builder)
    assert registry.get(b) is b
    with pytest.raises(TypeError, match="int"):
        registry.get(3)


def test_validation_errors():
    with pytest.raises(ValueError, match="channels"):
        Backbone("x", _fake_builder, channels=(1, 2, 3))
    with pytest.raises(ValueError, match="strides"):
        Backbone("x", _fake_builder, strides=(8, 4, 16, 32))
    with pytest.raises(ValueError, match="2\\+"):
        Backbone("x", _fake_builder, layer_groups={"2+": "a"})
    with pytest.raises(ValueError, match="regex"):
        Backbone("x", _fake_builder, layer_groups={"all": "(unclosed"})
    with pytest.raises(TypeError, match="callable"):
        Backbone("x", "not callable")
    with pytest.raises(ValueError, match="name"):
        Backbone("", _fake_builder)
    b = Backbone("x", _fake_builder)
    for bad in (0, 3, True, "2"):
        with pytest.raises(ValueError, match="first_stride"):
            b.strides(bad)
        with pytest.raises(ValueError, match="first_stride"):
            b.build("img", first_stride=bad)


def test_layer_regex():
    b = Backbone("x", _fake_builder, layer_groups={"4+": "s4.*"})
    assert b.layer_regex("heads") is None
    assert b.layer_regex("4+") == "s4.*"
    assert b.layer_regex("all") == ".*"
    with pytest.raises(ValueError, match="'3\\+'.*'4\\+'"):
        b.layer_regex("3+")


def test_pretrained_declaration_is_completed(clean_registry):
    md5 = "0123456789abcdef" * 2
    rename = str.upper
    registry.register("TinyNet", pretrained={
        "imagenet": {"file": "tiny.h5", "url": "https://example.invalid/tiny.h5", "md5": md5,
                     "alternative_md5": ("f" * 32,), "weighted_layers": 3},
        "local": {"file": "tiny_local.h5", "size": 10}}, rename=rename)(_fake_builder)
    b = registry.get("tinynet")
    assert b.rename is rename
    assert b.pretrained["imagenet"] == {
        "file": "tiny.h5", "url": "https://example.invalid/tiny.h5", "md5": md5,
        "alternative_md5": ["f" * 32], "sha256": None, "size": None, "verify": "md5",
        "weighted_layers": 3, "description": "imagenet weights of backbone TinyNet",
        "notes": "", "layout": None}
    local = b.pretrained["local"]
    assert (local["verify"], local["size"], local["url"], local["md5"]) == (
        "size", 10, None, None)
    assert Backbone("x", _fake_builder).pretrained == {}
    assert Backbone("x", _fake_builder).rename is None


@pytest.mark.parametrize("pretrained, error, match", [
    (["tiny.h5"], TypeError, "pretrained of backbone 'x' must be a dict"),
    ({"ImageNet": {"file": "a.h5"}}, ValueError, "lower-case word .*'ImageNet'"),
    ({"imagenet": "a.h5"}, TypeError, r"pretrained\['imagenet'\] .* must be a dict"),
    ({"imagenet": {"url": "https://x/a.h5"}}, ValueError, r"lacks \['file'\]"),
    ({"imagenet": {"file": "a.h5", "sha": "0"}}, ValueError, r"unknown fields \['sha'\]"),
    ({"imagenet": {"file": "dir/a.h5"}}, ValueError, "file name without folders, got 'dir/a.h5'"),
    ({"imagenet": {"file": "a.h5", "md5": "xyz"}}, ValueError, "md5 must be 32 .*'xyz'"),
    ({"imagenet": {"file": "a.h5", "verify": "md5"}}, ValueError, "verify='md5' needs an md5"),
    ({"imagenet": {"file": "a.h5", "verify": "sha1"}}, ValueError, "'md5' or 'size', got 'sha1'"),
    ({"imagenet": {"file": "a.h5", "size": -1}}, ValueError, "size must be a positive int"),
    ({"imagenet": {"file": "a.h5", "alternative_md5": "0" * 32}}, TypeError,
     "alternative_md5 must be a list"),
])
def test_pretrained_declaration_errors(pretrained, error, match):
    with pytest.raises(error, match=match):
        Backbone("x", _fake_builder, pretrained=pretrained)


def test_rename_must_be_callable():
    with pytest.raises(TypeError, match="rename of backbone 'x' must be callable"):
        Backbone("x", _fake_builder, rename="conv1")


def test_builtins_declare_their_imagenet_files():
    for name in registry.available():
        declared = registry.get(name).pretrained
        if name in ("small-cnn", "resnet18", "resnet34"):   # random weights only
            assert declared == {}
        else:
            assert list(declared) == ["imagenet"]
            assert declared["imagenet"]["verify"] == "md5"
            assert declared["imagenet"]["url"].endswith("/" + declared["imagenet"]["file"])
    assert registry.get("resnet50").rename is registry.get("resnet101").rename is not None
    assert registry.get("efficientnetv2-b0").rename is None


def test_registry_module_does_not_import_keras():
    code = ("import sys, importlib.util\n"
            "spec = importlib.util.spec_from_file_location('r', "
            f"{registry.__file__!r})\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "print('keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
