"""Tests of mrcnn/data/generator.py: batches, the sample cache, augmentation, sampling."""

import collections
import logging
import os

import numpy as np
import pytest
import skimage.io
from data_helpers import Cfg, Squares, make_cfg

from mrcnn.data import augment as A
from mrcnn.data.anchors import model_anchors
from mrcnn.data.boxes import denorm_boxes, extract_bboxes
from mrcnn.data.cache import SampleCache
from mrcnn.data.generator import DataGenerator, make_generators
from mrcnn.data.image import unmold_image
from mrcnn.data.masks import expand_mask
from mrcnn.data.rpn_targets import match_anchors, rpn_targets, sample_rpn_targets
from mrcnn.data.sample import prepare_sample
from mrcnn.dataset import Dataset


def test_batch_layout_and_targets(shapes):
    cfg = Cfg()
    gen = DataGenerator(shapes, cfg, shuffle=True, seed=1)
    batch = gen[0]
    a = model_anchors(cfg).shape[0]
    assert batch["input_image"].shape == (2, 128, 128, 3)
    assert batch["input_image_meta"].shape == (2, cfg.IMAGE_META_SIZE)
    assert batch["input_rpn_match"].shape == (2, a)
    assert batch["input_rpn_bbox"].shape == (2, 64, 4)
    assert batch["input_gt_masks"].shape == (2, 28, 28, 6)
    for j in range(2):
        match = batch["input_rpn_match"][j]
        assert (match != 0).sum() <= 64 and (match == 1).sum() <= 32
        n = int((batch["input_gt_class_ids"][j] > 0).sum())
        assert n >= 1
        # gt boxes are the bounding boxes of the (expanded) mini masks
        boxes = denorm_boxes(batch["input_gt_boxes"][j, :n], (128, 128))
        full = expand_mask(boxes, batch["input_gt_masks"][j, :, :, :n], (128, 128, 3))
        ext = extract_bboxes(full)
        assert np.abs(ext - boxes).max() <= 2
        assert np.all(batch["input_gt_class_ids"][j, n:] == 0)


def test_deterministic_for_seed(shapes):
    cfg = Cfg()
    a = DataGenerator(shapes, cfg, seed=7)[1]
    b = DataGenerator(shapes, cfg, seed=7)[1]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = DataGenerator(shapes, cfg, seed=8)
    c.on_epoch_end()
    assert any(not np.array_equal(a[k], c[1][k]) for k in a)


class Crowded(Dataset):
    def __init__(self):
        super().__init__()
        self.add_class("c", 1, "dot")
        self.add_image("c", image_id=0, path=None)

    def load_image(self, image_id):
        return np.full((64, 64, 3), 100, np.uint8)

    def load_mask(self, image_id):
        m = np.zeros((64, 64, 10), bool)
        for i in range(10):
            m[i * 6:i * 6 + 2 + (i % 3), 5:10 + i] = True
        return m, np.ones(10, np.int32)


def test_more_instances_than_max_keeps_largest_and_warns(caplog):
    class C(Cfg):
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 64
        MAX_GT_INSTANCES = 4
    ds = Crowded()
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        batch = DataGenerator(ds, C())[0]
    assert (batch["input_gt_class_ids"][0] > 0).sum() == 4
    assert "keeping the 4 largest" in caplog.text


def batches(gen, epochs):
    out = []
    for _ in range(epochs):
        out += [gen[i] for i in range(len(gen))]
        gen.on_epoch_end()
    return out


AUGMENTATIONS = {
    "none": None,
    "flips": A.Compose([A.Fliplr(), A.Flipud(), A.Rot90(), A.Brightness(10)]),
    "resample": A.cell_augmentation(crop_size=96),
}


@pytest.mark.parametrize("where", ["memory", "disk"])
@pytest.mark.parametrize("augmentation", sorted(AUGMENTATIONS))
def test_cached_and_fresh_samples_are_identical(tmp_path, where, augmentation):
    ds = Squares(count=4)
    cfg = Cfg()
    aug = AUGMENTATIONS[augmentation]
    cache = SampleCache(tmp_path if where == "disk" else None)
    fresh = batches(DataGenerator(ds, cfg, augmentation=aug, seed=3), 3)
    cached = batches(DataGenerator(ds, cfg, augmentation=aug, seed=3, cache=cache), 3)
    for a, b in zip(fresh, cached):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    stats = cache.stats()
    samples = 3 * 4
    # epoch 1 misses every image; later epochs hit (plus the anchor matchings
    # when boxes repeat, i.e. without resampling augmentation)
    assert stats.corrupt == 0
    assert stats.hits >= samples - 4
    if augmentation == "resample":
        assert (stats.hits, stats.misses, stats.writes) == (8, 4, 4)
    else:
        assert stats.writes > 4 and stats.ratio > 1
    # a second generator on a warm cache (a restart, for the disk cache) hits every image
    warm = SampleCache(tmp_path) if where == "disk" else cache
    before = warm.stats()
    again = batches(DataGenerator(ds, cfg, augmentation=aug, seed=3, cache=warm), 1)
    assert (warm.stats() - before).misses == 0
    for a, b in zip(fresh[:len(again)], again):
        np.testing.assert_array_equal(a["input_gt_masks"], b["input_gt_masks"])


def test_a_config_change_misses_the_cache():
    ds = Squares(count=3)
    cache = SampleCache()
    base = DataGenerator(ds, Cfg(), cache=cache)
    for image_id in range(3):
        base.prepared(image_id)
    for values in ({"MINI_MASK_SHAPE": (56, 56)}, {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64},
                   {"MAX_GT_INSTANCES": 2}):
        other = DataGenerator(ds, make_cfg(**values), cache=cache)
        before = cache.stats()
        prepared = other.prepared(1)
        assert (cache.stats() - before).misses == 1, values
        fresh = prepare_sample(ds, make_cfg(**values), 1, True)
        np.testing.assert_array_equal(prepared.instances.masks, fresh.instances.masks)
        np.testing.assert_array_equal(prepared.image, fresh.image)
    # the same config hits
    before = cache.stats()
    DataGenerator(ds, Cfg(), cache=cache).prepared(1)
    assert (cache.stats() - before).hits == 1


def test_corrupted_disk_entries_are_recomputed(tmp_path, caplog):
    ds = Squares(count=3)
    fresh = batches(DataGenerator(ds, Cfg(), seed=1), 1)
    batches(DataGenerator(ds, Cfg(), seed=1, cache=SampleCache(tmp_path)), 1)
    files = [os.path.join(folder, name) for folder, _, names in os.walk(tmp_path)
             for name in names]
    assert len(files) >= 3
    for path in files:
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    cache = SampleCache(tmp_path)
    with caplog.at_level(logging.WARNING):
        again = batches(DataGenerator(ds, Cfg(), seed=1, cache=cache), 1)
    for a, b in zip(fresh, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert cache.stats().corrupt == len(files)
    assert "is corrupt" in caplog.text
    # the entries were rewritten: a new reader hits them
    reader = SampleCache(tmp_path)
    batches(DataGenerator(ds, Cfg(), seed=1, cache=reader), 1)
    assert reader.stats().misses == 0 and reader.stats().corrupt == 0


@pytest.mark.parametrize("seed", range(6))
def test_cached_anchor_matching_gives_rpn_targets(seed):
    rng = np.random.default_rng(seed)
    anchors = model_anchors(Cfg())
    count = [0, 1, 5, 40, 120, 7][seed]
    yx = rng.integers(0, 110, (count, 2))
    boxes = np.concatenate([yx, yx + rng.integers(2, 60, (count, 2))], axis=1)
    class_ids = rng.integers(1, 4, count).astype(np.int32)
    if seed == 5:
        class_ids[:2] = -1                                         # crowd boxes
    match = match_anchors(anchors, boxes, class_ids)
    for n in (64, 256):
        ours = sample_rpn_targets(match, anchors, boxes, class_ids, n,
                                  [0.1, 0.1, 0.2, 0.2], np.random.default_rng(seed))
        ref = rpn_targets(anchors, boxes, class_ids, n, [0.1, 0.1, 0.2, 0.2],
                          np.random.default_rng(seed))
        np.testing.assert_array_equal(ours[0], ref[0])
        np.testing.assert_array_equal(ours[1], ref[1])


@pytest.mark.parametrize("cached", [False, True])
def test_rpn_thresholds_reach_the_batches(shapes, cached):
    """RPN_POSITIVE_IOU / RPN_NEGATIVE_IOU label the generator's anchors, cached or not,
    and a cached matching at other thresholds is not reused."""
    def labels(cfg, cache):
        gen = DataGenerator(shapes, cfg, seed=3, cache=cache)
        return np.stack([gen[i]["input_rpn_match"] for i in range(2)])

    def expected(cfg):
        gen = DataGenerator(shapes, cfg, seed=3)
        out = []
        for i in range(2):
            batch = gen[i]
            for j in range(cfg.BATCH_SIZE):
                n = int((batch["input_gt_class_ids"][j] != 0).sum())
                boxes = denorm_boxes(batch["input_gt_boxes"][j, :n], cfg.IMAGE_SHAPE[:2])
                out.append(match_anchors(gen.anchors, boxes,
                                         batch["input_gt_class_ids"][j, :n],
                                         cfg.RPN_POSITIVE_IOU, cfg.RPN_NEGATIVE_IOU)["labels"])
        return np.stack(out)

    cache = SampleCache() if cached else None
    matterport = make_cfg(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)      # no subsampling
    loose = make_cfg(RPN_TRAIN_ANCHORS_PER_IMAGE=4096, RPN_POSITIVE_IOU=0.5,
                     RPN_NEGATIVE_IOU=0.2)
    for cfg in (matterport, loose, matterport):                  # the cache sees both
        got = labels(cfg, cache).reshape(-1, len(DataGenerator(shapes, cfg).anchors))
        np.testing.assert_array_equal(got, expected(cfg))
    assert (expected(loose) == 1).sum() > (expected(matterport) == 1).sum()


def unmolded_alignment(batch, cfg):
    """Share of mask pixels (mini masks expanded into their boxes) that are bright,
    and share of bright pixels under a mask, over a batch."""
    h, w = int(cfg.IMAGE_SHAPE[0]), int(cfg.IMAGE_SHAPE[1])
    hits = covered_total = bright_total = 0
    for j in range(batch["input_image"].shape[0]):
        image = unmold_image(batch["input_image"][j], cfg)
        n = int((batch["input_gt_class_ids"][j] > 0).sum())
        boxes = denorm_boxes(batch["input_gt_boxes"][j, :n], (h, w))
        full = expand_mask(boxes, batch["input_gt_masks"][j, :, :, :n], (h, w, 3))
        covered = full.any(axis=2)
        bright = image[:, :, 0] > 110
        hits += (covered & bright).sum()
        covered_total += covered.sum()
        bright_total += bright.sum()
    return hits / covered_total, hits / bright_total


@pytest.mark.parametrize("augmentation", sorted(AUGMENTATIONS))
def test_batches_keep_boxes_masks_and_image_aligned(augmentation):
    ds = Squares(count=4)
    cfg = Cfg()
    gen = DataGenerator(ds, cfg, augmentation=AUGMENTATIONS[augmentation], seed=5,
                        cache=SampleCache())
    assert gen.mini_masks == (augmentation != "resample")
    for batch in batches(gen, 2):
        precision, recall = unmolded_alignment(batch, cfg)
        # mini masks are 28x28 resamplings of the squares: boundaries blur a little
        assert precision > 0.9 and recall > 0.9, (precision, recall)


def test_balanced_sampling_in_the_generator():
    ds = Squares(count=5)                        # cell types a, b, a, b, a
    gen = DataGenerator(ds, Cfg(), sampler="cell_type", seed=2)
    assert len(gen) == 3                          # 2 groups x 3 images / batch of 2
    order = gen._order()
    counts = collections.Counter(ds.image_info[i]["cell_type"] for i in order)
    assert counts == {"a": 3, "b": 3}
    gen.on_epoch_end()
    assert not np.array_equal(order, gen._order())


def test_make_generators_share_one_cache(tmp_path, caplog):
    ds = Squares(count=3)
    cfg = make_cfg(CACHE="disk", STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    train, val, cache = make_generators(ds, ds, cfg, model_dir=str(tmp_path), seed=4,
                                        epoch=2)
    assert train.cache is val.cache and train.cache.directory == str(tmp_path / "cache")
    assert (len(train), len(val), train.epoch, val.seed, val.shuffle) == (2, 1, 2, 5, False)
    assert cache is train.cache
    train, val, cache = make_generators(ds, None, make_cfg(CACHE=False))
    assert train.cache is None and val is None and cache is None
    with caplog.at_level(logging.WARNING):
        make_generators(ds, None, make_cfg(CACHE=True), workers=2)
    assert "CACHE='disk'" in caplog.text


def test_no_augmentation_sources_skip_augmentation():
    ds = Squares(count=2)
    flip = A.Fliplr(p=1)
    plain = DataGenerator(ds, Cfg(), seed=1)[0]
    skipped = DataGenerator(ds, Cfg(), seed=1, augmentation=flip,
                            no_augmentation_sources=["sq"])[0]
    flipped = DataGenerator(ds, Cfg(), seed=1, augmentation=flip)[0]
    np.testing.assert_array_equal(skipped["input_image"], plain["input_image"])
    np.testing.assert_array_equal(flipped["input_image"], plain["input_image"][:, :, ::-1])


def test_swapped_disk_entries_are_rejected_and_recomputed(tmp_path, caplog):
    # Two valid entry files exchanged on disk (a copy gone wrong, a sync tool, a
    # hand-made "fix"): image 1 must not be fed the sample of image 2.
    ds = Squares(count=4)
    fresh = batches(DataGenerator(ds, Cfg(), seed=1), 2)
    writer = DataGenerator(ds, Cfg(), seed=1, cache=SampleCache(tmp_path))
    batches(writer, 1)
    first, second = (writer.cache.path(writer._keys[i]) for i in (1, 2))
    a, b = open(first, "rb").read(), open(second, "rb").read()
    assert a != b
    open(first, "wb").write(b)
    open(second, "wb").write(a)
    cache = SampleCache(tmp_path)
    with caplog.at_level(logging.WARNING):
        again = batches(DataGenerator(ds, Cfg(), seed=1, cache=cache), 2)
    for x, y in zip(fresh, again):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert cache.stats().corrupt == 2
    assert "holds the entry of another key" in caplog.text
    # both were rewritten under their own keys: a new reader hits every entry
    reader = SampleCache(tmp_path)
    batches(DataGenerator(ds, Cfg(), seed=1, cache=reader), 1)
    assert (reader.stats().misses, reader.stats().corrupt) == (0, 0)


class PngSquares(Squares):
    """Squares read back from PNG files by Dataset.load_image (the path is the reference)."""

    def __init__(self, folder, count=4, **kwargs):
        super().__init__(count=count, **kwargs)
        for image_id, info in enumerate(self.image_info):
            info["path"] = str(folder / f"square_{image_id}.png")
            skimage.io.imsave(info["path"], Squares.load_image(self, image_id),
                              check_contrast=False)

    load_image = Dataset.load_image


def _corrupt_png(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])       # a truncated download


def test_an_unreadable_image_is_reported_by_id_and_path(tmp_path):
    ds = PngSquares(tmp_path, count=4)
    _corrupt_png(ds.image_info[2]["path"])
    gen = DataGenerator(ds, Cfg(), shuffle=False)        # batch 1 holds images 2 and 3
    gen[0]
    with pytest.raises(ValueError) as info:
        gen[1]
    message = str(info.value)
    assert message.startswith(f"image 2 ({ds.image_info[2]['path']}) of PngSquares: cannot "
                              f"build its training sample: ValueError: image 2: cannot read ")
    assert message.endswith("Fix or replace that file (or its masks), or remove the image "
                            "from the dataset, then train again")
    assert (info.value.image_id, info.value.image_reference) == (2, ds.image_info[2]["path"])
    assert "cannot read" in str(info.value.__cause__)   # the original error, kept
    assert gen.last_error == (info.value, info.value.__cause__)


def _train_with_a_corrupt_image(tmp_path, workers):
    """model.train over 6 PNG images, one corrupt; the raised error."""
    keras = pytest.importorskip("keras")
    from model_helpers import make_config

    import mrcnn.model as modellib

    config = make_config(IMAGES_PER_GPU=2, STEPS_PER_EPOCH=3, WORKERS=workers)
    ds = PngSquares(tmp_path, count=6, height=64, width=64)
    order = DataGenerator(ds, config, seed=0)._order()
    # TensorFlow builds the first two batches itself (to learn the input
    # shapes) and the rest inside tf.data, which wraps errors: put the bad image
    # in batch 2 there; other backends read every batch alike
    bad = int(order[5] if keras.backend.backend() == "tensorflow" else order[0])
    _corrupt_png(ds.image_info[bad]["path"])
    model = modellib.MaskRCNN("training", config, str(tmp_path / "logs"))
    with pytest.raises(Exception) as info:
        model.train(ds, None, 0.01, epochs=1, layers="heads", verbose=0)
    return info.value, bad, ds.image_info[bad]["path"]


@pytest.mark.parametrize("workers", [0, 2])
def test_fit_raises_the_image_error_not_the_backends(tmp_path, workers):
    keras = pytest.importorskip("keras")
    if workers and keras.backend.backend() != "tensorflow":
        pytest.skip("worker processes: the TensorFlow path rebuilds the error from text")
    error, bad, path = _train_with_a_corrupt_image(tmp_path, workers)
    # before: tensorflow.python.framework.errors_impl.UnknownError / InvalidArgumentError,
    # 142 lines of tf.data traceback in its message
    assert type(error) is ValueError, type(error)
    message = str(error)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"image {bad} ({path}) of PngSquares: cannot build its training "
                              f"sample: ValueError: image {bad}: cannot read {path!r}")
    assert "remove the image from the dataset" in message
    assert (error.image_id, error.image_reference) == (bad, path)
    if workers == 0:
        assert isinstance(error.__cause__, ValueError)           # Dataset.load_image's error
        assert str(error.__cause__).startswith(f"image {bad}: cannot read {path!r}")
    else:
        assert error.__cause__ is None                           # it stayed in the worker


def test_too_few_num_classes_fails_at_once_not_as_an_image_error():
    ds = Squares(count=2)                                # BG + square + big
    with pytest.raises(ValueError, match="^Squares has 3 classes .* but Config.NUM_CLASSES is "
                                         "2; set NUM_CLASSES = 3$"):
        DataGenerator(ds, make_cfg(NUM_CLASSES=2))


# ------------------------------------------------------------- several processes
@pytest.mark.parametrize("count", [2, 4])
def test_shards_of_each_batch_are_the_rows_of_the_whole_batch(shapes, count):
    """Each process's rows, stacked in process order, are the batch one process would give."""
    cfg = make_cfg(IMAGES_PER_GPU=4, GPU_COUNT=1)
    augmentation = A.Compose([A.Fliplr(), A.Rot90()])
    whole = DataGenerator(shapes, cfg, seed=3, augmentation=augmentation)
    parts = [DataGenerator(shapes, cfg, seed=3, augmentation=augmentation, shard=(i, count))
             for i in range(count)]
    assert [len(p) for p in parts] == [len(whole)] * count     # same steps per epoch
    for epoch in range(2):
        for index in range(len(whole)):
            expected = whole[index]
            pieces = [p[index] for p in parts]
            for key, value in expected.items():
                assert all(piece[key].shape[0] == 4 // count for piece in pieces)
                np.testing.assert_array_equal(np.concatenate([p[key] for p in pieces]), value)
        for g in [whole] + parts:
            g.on_epoch_end()


def test_shard_rows_and_bad_shards():
    from mrcnn.data.generator import shard_rows

    assert list(shard_rows(6)) == [0, 1, 2, 3, 4, 5]
    assert [list(shard_rows(6, (i, 3))) for i in range(3)] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError) as err:
        shard_rows(6, (0, 4))
    assert ("the global batch of 6 images does not split evenly over 4 processes: make "
            "BATCH_SIZE (GPU_COUNT x IMAGES_PER_GPU") in str(err.value)
    with pytest.raises(ValueError, match=r"0 <= index < count, got \(2, 2\)"):
        shard_rows(6, (2, 2))


def test_make_generators_follow_the_job(tmp_path, monkeypatch):
    """JAX job: this process's rows; TensorFlow job: whole batches, cache writes by the chief."""
    from mrcnn.distribute import cluster

    ds = Squares(count=4)
    cfg = make_cfg(CACHE="disk", STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    train, val, cache = make_generators(ds, ds, cfg, model_dir=str(tmp_path))
    assert list(train.rows) == [0, 1] and cache.writes                   # one process
    monkeypatch.setattr(cluster, "data_shard", lambda: (1, 2))
    monkeypatch.setattr(cluster, "is_chief", lambda: False)
    train, val, cache = make_generators(ds, ds, cfg, model_dir=str(tmp_path))
    assert list(train.rows) == list(val.rows) == [1] and cache.writes   # each its own rows
    monkeypatch.setattr(cluster, "data_shard", lambda: None)
    train, val, cache = make_generators(ds, ds, cfg, model_dir=str(tmp_path))
    assert list(train.rows) == [0, 1] and not cache.writes              # the chief stores
    train[0]
    assert cache.stats().writes == 0 and cache.stats().entries == 0
    monkeypatch.setattr(cluster, "is_chief", lambda: True)
    train, _, cache = make_generators(ds, None, cfg, model_dir=str(tmp_path), shard=None)
    train[0]
    assert cache.writes and cache.stats().writes > 0
    monkeypatch.setattr(cluster, "is_chief", lambda: False)
    memory, _, _ = make_generators(ds, None, make_cfg(CACHE=True), shard=None)
    assert memory.cache.writes                           # a process's own memory cache
