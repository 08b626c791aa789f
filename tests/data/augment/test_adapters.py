import sys
import types

import numpy as np
import pytest

from mrcnn.data import augment as A
from mrcnn.data.augment import AlbumentationsAdapter, CallableAdapter, ImgaugAdapter
from mrcnn.data.augment.adapters import adapter_for

# Backend-independent: imgaug / albumentations adapters on NumPy arrays; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_callable_adapter_matterport_style(bright_squares):
    image, masks = bright_squares()

    def flip(image, masks, rng):
        return image[:, ::-1], masks[:, ::-1]

    out_image, out_masks = CallableAdapter(flip)(image, masks)
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    with pytest.raises(ValueError, match="N=5"):
        CallableAdapter(lambda i, m, r: (i, m[:, :, :2]))(image, masks)


class _FakeDeterministic:
    """Mimics imgaug's deterministic augmenter: a seeded flip plus a colour op."""

    def __init__(self):
        self.seed = None

    def seed_(self, seed):
        self.seed = seed

    def augment_image(self, image, hooks=None):
        out = image[:, ::-1] if self.seed % 2 else image[::-1]
        colour = _FakeColour()
        if hooks is None or hooks.activator(out, colour, [], True):
            out = np.clip(out.astype(np.int32) + 30, 0, 255).astype(image.dtype)
        return np.ascontiguousarray(out)


class _FakeColour:
    pass


class _FakeImgaug:
    """Mimics imgaug's Augmenter API: to_deterministic() and augment_image()."""

    def to_deterministic(self):
        return _FakeDeterministic()

    def augment_image(self, image, hooks=None):
        raise AssertionError("the adapter must use a deterministic copy")


def test_as_augmenter_picks_the_adapter():
    assert isinstance(A.as_augmenter(lambda image, masks, rng: (image, masks)),
                      CallableAdapter)
    assert isinstance(A.as_augmenter(_FakeImgaug()), ImgaugAdapter)
    albumentations = pytest.importorskip("albumentations")
    assert isinstance(A.as_augmenter(albumentations.HorizontalFlip()), AlbumentationsAdapter)


def test_adapter_for_returns_none_for_anything_else():
    assert adapter_for(42) is None and adapter_for("fliplr") is None
    assert isinstance(adapter_for(print), CallableAdapter)


def test_imgaug_adapter_with_a_fake_augmenter_and_hooks(monkeypatch, bright_squares, alignment):
    image, masks = bright_squares()
    fake_module = types.SimpleNamespace(
        HooksImages=lambda activator: types.SimpleNamespace(activator=activator))
    monkeypatch.setitem(sys.modules, "imgaug", fake_module)
    augmenter = A.as_augmenter(_FakeImgaug())
    assert isinstance(augmenter, ImgaugAdapter)
    first = augmenter(image, masks, np.random.default_rng(3))
    again = augmenter(image, masks, np.random.default_rng(3))
    np.testing.assert_array_equal(first[1], again[1])          # seeded from the rng
    out_image, out_masks = first
    assert out_image.max() == 230                                # colour op on the image
    seed = np.random.default_rng(3).integers(2 ** 31 - 1)
    expected = masks[:, ::-1] if seed % 2 else masks[::-1]       # hooks kept it off masks
    np.testing.assert_array_equal(out_masks, expected)
    assert alignment(out_image, out_masks) == (1.0, 1.0)


def test_imgaug_adapter_never_imports_imgaug(bright_squares):
    sys.modules.pop("imgaug", None)

    class Geometric(_FakeDeterministic):
        def augment_image(self, image, hooks=None):
            assert hooks is None
            return np.ascontiguousarray(image[:, ::-1])

    class Augmenter(_FakeImgaug):
        def to_deterministic(self):
            return Geometric()

    image, masks = bright_squares()
    out_image, out_masks = A.as_augmenter(Augmenter())(image, masks, 0)
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    assert "imgaug" not in sys.modules


def test_albumentations_pipeline_keeps_instances_exact(bright_squares, alignment):
    albumentations = pytest.importorskip("albumentations")
    pipeline = albumentations.Compose([
        albumentations.HorizontalFlip(p=1.0),
        albumentations.Affine(rotate=(-20, 20), p=1.0),
        albumentations.RandomCrop(64, 64),
        albumentations.RandomBrightnessContrast(p=1.0),
    ])
    augmenter = A.as_augmenter(pipeline)
    assert isinstance(augmenter, AlbumentationsAdapter)
    image, masks = bright_squares()
    out_image, out_masks = augmenter(image, masks, np.random.default_rng(0))
    assert out_image.shape == (64, 64, 3) and out_masks.shape == (64, 64, 5)
    precision, recall = alignment(out_image, out_masks)
    assert precision > 0.9 and recall > 0.9
    again = augmenter(image, masks, np.random.default_rng(0))
    np.testing.assert_array_equal(again[1], out_masks)
    # a 64x64 crop of a 120x128 image cannot hold all five squares
    assert out_masks.any(axis=(0, 1)).sum() < 5
