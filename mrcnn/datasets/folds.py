"""K-fold cross-validation splits by image.

Kaggle cell-segmentation solutions train one model per fold and ensemble or
pick by validation score; the split must be by image (never by instance) so
that no image's cells appear in both the training and the validation part.
Optionally the split is stratified by a label per image (e.g. the Sartorius
cell type) so that every fold sees every type in the same proportion.
"""

import numpy as np


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
