import collections

import numpy as np
import pytest

from mrcnn.datasets import kfold_datasets, kfold_indices, subset_dataset
from mrcnn.datasets.folds import kfold_split
from tests.model_helpers import shapes

# Backend-independent: k-fold splits of Dataset ids; no Keras op.
pytestmark = pytest.mark.backend_independent

IDS = [f"img{i:02d}" for i in range(23)]


@pytest.mark.parametrize("k", [2, 5, 23])
def test_validation_parts_partition_the_ids(k):
    val_parts = []
    for fold in range(k):
        train, val = kfold_split(IDS, k=k, fold=fold, seed=7)
        assert sorted(train + val) == sorted(IDS) and not set(train) & set(val)
        assert train == [i for i in IDS if i in train]      # input order kept
        assert val == [i for i in IDS if i in val]
        val_parts.append(val)
    counts = collections.Counter(i for part in val_parts for i in part)
    assert set(counts) == set(IDS) and set(counts.values()) == {1}
    sizes = sorted(len(part) for part in val_parts)
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == len(IDS)


def test_seed_decides_the_split():
    assert kfold_split(IDS, 5, 2, seed=1) == kfold_split(IDS, 5, 2, seed=1)
    assert kfold_split(IDS, 5, 2, seed=1) != kfold_split(IDS, 5, 2, seed=2)


def test_stratified_by_group():
    groups = ["astro"] * 6 + ["cort"] * 9 + ["shsy5y"] * 8
    label = dict(zip(IDS, groups))
    sizes = []
    for fold in range(3):
        _, val = kfold_split(IDS, k=3, fold=fold, seed=0, groups=groups)
        per_type = collections.Counter(label[i] for i in val)
        assert per_type["astro"] == 2 and per_type["cort"] == 3
        assert per_type["shsy5y"] in (2, 3)
        sizes.append(len(val))
    assert sorted(sizes) == [7, 8, 8]


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=1, fold=0), "k must be an integer >= 2"),
    (dict(k=30, fold=0), "cannot split 23 images into k=30"),
    (dict(k=5, fold=5), r"fold must be an integer in \[0, 5\)"),
    (dict(k=5, fold=0, groups=["a"]), "one label per image id"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kfold_split(IDS, **kwargs)


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="duplicates.*'img01'"):
        kfold_split(IDS + ["img01"], k=2, fold=0)


# --- kfold_indices / subset_dataset / kfold_datasets -----------------------

def test_kfold_indices_partition_and_balance():
    folds = kfold_indices(10, 3, seed=0)
    vals = [v for _, v in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(10))
    assert sorted(len(v) for v in vals) == [3, 3, 4]
    for train, val in folds:
        assert np.intersect1d(train, val).size == 0
        assert train.size + val.size == 10
    again = kfold_indices(10, 3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1])
                   for a, b in zip(folds, kfold_indices(10, 3, seed=1)))
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, n=3\]"):
        kfold_indices(3, 4)


def test_kfold_indices_stratified_spreads_each_label():
    labels = np.array(["astro"] * 6 + ["cort"] * 3 + ["shsy5y"] * 9)
    folds = kfold_indices(labels.size, 3, seed=0, stratify=labels)
    for _, val in folds:
        counts = {k: int(np.sum(labels[val] == k)) for k in ("astro", "cort", "shsy5y")}
        assert counts == {"astro": 2, "cort": 1, "shsy5y": 3}
    with pytest.raises(ValueError, match="stratify has 2 labels for n=18"):
        kfold_indices(18, 3, stratify=["a", "b"])


def test_subset_dataset_and_kfold_datasets():
    ds = shapes(count=5, size=32, seed=3)
    sub = subset_dataset(ds, [3, 1])
    assert sub.num_images == 2 and ds.num_images == 5
    np.testing.assert_array_equal(sub.load_image(0), ds.load_image(3))
    np.testing.assert_array_equal(sub.load_mask(1)[0], ds.load_mask(1)[0])
    assert sub.class_names == ds.class_names
    pairs = kfold_datasets(ds, 5, seed=0)
    assert [(t.num_images, v.num_images) for t, v in pairs] == [(4, 1)] * 5
    with pytest.raises(ValueError, match=r"image ids out of range \[0, 5\): \[7\]"):
        subset_dataset(ds, [7])
