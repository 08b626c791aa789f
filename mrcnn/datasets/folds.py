"""K-fold cross-validation splits by image.

Kaggle cell-segmentation solutions train one model per fold and ensemble or
pick by validation score; the split must be by image (never by instance) so
that no image's cells appear in both the training and the validation part.
Optionally the split is stratified by a label per image (e.g. the Sartorius
cell type) so that every fold sees every type in the same proportion.

* :func:`kfold_split`: training and validation ids of one fold;
* :func:`kfold_indices`: index arrays of every fold at once;
* :func:`subset_dataset` / :func:`kfold_datasets`: the same as prepared
  ``Dataset`` objects.

All of them deal the images the same way (:func:`kfold_split`).
"""

import copy
import numbers

import numpy as np

__all__ = ["kfold_datasets", "kfold_indices", "kfold_split", "subset_dataset"]


def kfold_split(image_ids, k=5, fold=0, seed=0, groups=None):
    """Split image ids into the training and validation part of one fold.

    Images are shuffled with `seed` and dealt to the k folds in turn, so fold
    sizes differ by at most one. With `groups`, each group (label) is
    shuffled and dealt separately, continuing the dealing where the previous
    group stopped: every fold gets each label's images in equal shares (+-1)
    and fold sizes still differ by at most one. The k validation parts of the
    same (image_ids, k, seed, groups) partition the ids.

    Args:
        image_ids: sequence of unique hashable image ids (e.g. Sartorius ids).
        k: number of folds, 2 <= k <= len(image_ids).
        fold: which fold to hold out, 0 <= fold < k.
        seed: seed of the shuffle; the same seed gives the same folds.
        groups: optional sequence of labels, one per image id (e.g. the cell
            type of each image), to stratify by.

    Returns:
        (train_ids, val_ids): two lists of ids, each in the order of
        `image_ids`.

    Raises:
        ValueError: for k or fold out of range, duplicate ids, or `groups` of
            the wrong length.
    """
    ids = list(image_ids)
    n = len(ids)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if n < k:
        raise ValueError(f"cannot split {n} images into k={k} folds; need at least k images")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < k:
        raise ValueError(f"fold must be an integer in [0, {k}), got {fold!r}")
    if len(set(ids)) != n:
        seen, duplicate = set(), None
        for image_id in ids:
            if image_id in seen:
                duplicate = image_id
                break
            seen.add(image_id)
        raise ValueError(f"image_ids contains duplicates (e.g. {duplicate!r}); a split by "
                         f"image needs unique ids")
    rng = np.random.default_rng(seed)
    if groups is None:
        labels = np.zeros(n, np.int64)
    else:
        groups = list(groups)
        if len(groups) != n:
            raise ValueError(f"groups must have one label per image id ({n}), got {len(groups)}")
        _, labels = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    # Deal the images of each label in a shuffled order; the dealing position
    # continues from one label to the next, which keeps fold sizes balanced.
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == label))
                            for label in np.unique(labels)])
    assignment = np.empty(n, np.int64)
    assignment[order] = np.arange(n) % k
    val = assignment == fold
    train_ids = [image_id for image_id, v in zip(ids, val) if not v]
    val_ids = [image_id for image_id, v in zip(ids, val) if v]
    return train_ids, val_ids


def kfold_indices(n, k, seed=0, stratify=None):
    """Shuffled k-fold split of ``n`` items (all folds at once).

    The folds are those of :func:`kfold_split` (items shuffled and dealt to
    the folds in turn; with ``stratify``, label by label), returned as index
    arrays for every fold.

    Args:
        n: number of items.
        k: number of folds, ``2 <= k <= n``.
        seed: shuffling seed.
        stratify: optional ``[n]`` labels (e.g. each image's cell type); each
            label's items are spread over the folds as evenly as possible.

    Returns:
        list of ``k`` pairs ``(train, val)`` of sorted int64 index arrays; the
        ``val`` arrays partition ``range(n)`` and differ in size by at most 1.

    Raises:
        ValueError: for ``k`` out of range or ``stratify`` of the wrong length.
    """
    n = int(n)
    if not isinstance(k, (numbers.Integral, np.integer)) or not 2 <= k <= n:
        raise ValueError(f"k must be an integer in [2, n={n}], got {k!r}")
    if stratify is not None and len(stratify) != n:
        raise ValueError(f"stratify has {len(stratify)} labels for n={n} items")
    folds = [kfold_split(range(n), int(k), fold, seed, groups=stratify)
             for fold in range(int(k))]
    return [(np.asarray(train, np.int64), np.asarray(val, np.int64))
            for train, val in folds]


def subset_dataset(dataset, image_ids):
    """A prepared copy of ``dataset`` holding only ``image_ids``.

    The copy is shallow: it shares the classes and any loader state, with
    ``image_info`` restricted to the given internal ids (in that order). It
    works for datasets whose ``load_image`` / ``load_mask`` read what they
    need from ``image_info``, as Matterport datasets do.

    Args:
        dataset: prepared Dataset.
        image_ids: internal image ids of ``dataset``.

    Returns:
        Dataset of the same class, prepared, with ids ``0 .. len(image_ids)-1``.

    Raises:
        ValueError: for an id outside ``[0, number of images)``.
    """
    n = len(dataset.image_info)
    ids = [int(i) for i in image_ids]
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ValueError(f"image ids out of range [0, {n}): {bad[:10]}")
    subset = copy.copy(dataset)
    subset.image_info = [dataset.image_info[i] for i in ids]
    subset.class_info = list(dataset.class_info)
    subset.prepare()
    return subset


def kfold_datasets(dataset, k, seed=0, stratify=None):
    """``(train, val)`` dataset pairs of a k-fold split.

    Args:
        dataset: prepared Dataset.
        k: number of folds, ``2 <= k <= number of images``.
        seed: shuffling seed.
        stratify: optional label per image (see :func:`kfold_indices`).

    Returns:
        list of ``k`` pairs of prepared datasets (:func:`subset_dataset`) over
        the folds of :func:`kfold_indices`.
    """
    return [(subset_dataset(dataset, train), subset_dataset(dataset, val))
            for train, val in kfold_indices(len(dataset.image_info), k, seed, stratify)]
