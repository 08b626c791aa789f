import collections

import pytest

from mrcnn.datasets.folds import kfold_split

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
