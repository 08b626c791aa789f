import pytest

from mrcnn.data import augment as A

# Backend-independent: NumPy augmenter combinators; no Keras op.
pytestmark = pytest.mark.backend_independent

EXACT = [A.Compose([A.Fliplr(), A.Flipud(), A.Rot90(), A.RandomCrop(70)])]
RESAMPLING = [A.Sometimes(1.0, A.OneOf([A.Rotate(30), A.RandomScale((0.5, 0.8))]))]


@pytest.mark.parametrize("augmenter", EXACT, ids=repr)
def test_exact_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                           assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter)


@pytest.mark.parametrize("augmenter", RESAMPLING, ids=repr)
def test_resampling_transforms_keep_masks_on_the_bright_squares(augmenter,
                                                                assert_masks_follow_squares):
    assert_masks_follow_squares(augmenter, resampling=True)


def test_kinds_and_wrapping():
    assert A.Compose([A.Brightness(), A.Fliplr()]).kind == A.DIHEDRAL
    assert A.Compose([A.Fliplr(), A.Sometimes(0.1, A.Rotate(5))]).kind == A.RESAMPLE
    assert A.Compose([A.Contrast()]).kind == A.PHOTOMETRIC
    assert A.as_augmenter(None) is None
    assert isinstance(A.as_augmenter([A.Fliplr()]), A.Compose)
    assert callable(A.as_augmenter(lambda image, masks, rng: (image, masks)).apply)
    with pytest.raises(TypeError, match="augmentation must be"):
        A.as_augmenter(42)


def test_combinators_wrap_their_parts_and_reject_empty_ones():
    compose = A.Compose([A.Fliplr(), lambda image, masks, rng: (image, masks)])
    assert isinstance(compose.augmenters[1], A.CallableAdapter)
    assert isinstance(A.Sometimes(0.5, [A.Fliplr()]).augmenter, A.Compose)
    assert A.Compose([]).kind == A.PHOTOMETRIC
    with pytest.raises(TypeError, match="Compose got None"):
        A.Compose([A.Fliplr(), None])
    with pytest.raises(ValueError, match="OneOf needs at least one augmenter"):
        A.OneOf([])
    with pytest.raises(ValueError, match="probability"):
        A.Sometimes(2, A.Fliplr())
