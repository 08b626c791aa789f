"""Tests for the public names of mrcnn.evaluation."""

import pytest

# Backend-independent: the public names of mrcnn.evaluation; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_coco_ap_and_evaluate_are_exported_by_the_evaluation_package():
    import mrcnn.evaluation
    import mrcnn.evaluation.coco
    import mrcnn.evaluation.report
    assert mrcnn.evaluation.coco_ap is mrcnn.evaluation.coco.coco_ap
    assert mrcnn.evaluation.evaluate is mrcnn.evaluation.report.evaluate
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mrcnn.evaluation.nope


def test_every_public_name_is_exported_and_the_kfold_names_moved():
    import mrcnn.datasets
    import mrcnn.evaluation
    for name in mrcnn.evaluation.__all__:
        assert getattr(mrcnn.evaluation, name) is not None
    for name in ("kfold_indices", "subset_dataset", "kfold_datasets"):
        assert name not in mrcnn.evaluation.__all__
        assert not hasattr(mrcnn.evaluation, name)
        assert name in mrcnn.datasets.__all__
