import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data import cache as cache_mod
from mrcnn.data.cache import (CacheEntryError, SampleCache, decode_entry, encode_entry,
                              open_cache, sample_key)
from mrcnn.dataset import Dataset


def example_arrays(seed=0):
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (37, 29, 1), dtype=np.uint8)
    return {
        "image": np.repeat(gray, 3, axis=2),                     # stored once ("repeat")
        "color": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        "masks": rng.random((13, 11, 5)) < 0.3,                  # odd sizes: bit packing
        "layers": rng.integers(0, 900, (20, 30, 2), dtype=np.uint16),
        "class_ids": np.array([1, 3, 2], np.int32),
        "boxes": np.zeros((0, 4), np.int32),
        "scale": np.array([0.75]),
    }


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_encode_decode_round_trip_and_compression():
    arrays = example_arrays()
    blob, raw = encode_entry(arrays)
    assert raw == sum(a.nbytes for a in arrays.values())
    decoded = decode_entry(blob)
    assert_same(decoded, arrays)
    assert decoded["image"].flags.writeable
    # the repeated gray channels and the bit-packed masks shrink the entry:
    # image 37*29*3 -> 37*29 bytes, masks 715 bools -> 90 bytes
    assert len(blob) < raw - 2 * 37 * 29 - (715 - 90) + 400


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "version", "extend"])
def test_damaged_entries_raise(damage):
    blob = bytearray(encode_entry(example_arrays())[0])
    if damage == "flip":
        blob[-10] ^= 0x40
    elif damage == "truncate":
        blob = blob[:len(blob) // 2]
    elif damage == "magic":
        blob[0:8] = b"NOTMRCNN"
    elif damage == "version":
        blob[8] += 1
    else:
        blob += b"\0"
    with pytest.raises(CacheEntryError):
        decode_entry(bytes(blob))


def test_memory_cache_counts_and_budget():
    arrays = example_arrays()
    blob_size = len(encode_entry(arrays)[0])
    cache = SampleCache(max_bytes=int(1.5 * blob_size))
    assert cache.mode == "memory"
    assert cache.get("a") is None
    assert cache.put("a", arrays)
    assert_same(cache.get("a"), arrays)
    assert not cache.put("b", arrays)          # over budget: not stored
    assert cache.get("b") is None
    s = cache.stats()
    assert (s.hits, s.misses, s.writes, s.skipped, s.entries) == (1, 2, 1, 1, 1)
    assert s.size_bytes == blob_size and s.read_bytes == blob_size
    assert s.read_raw == s.write_raw == sum(a.nbytes for a in arrays.values())
    assert s.ratio == pytest.approx(s.write_raw / blob_size)
    assert s.hit_rate == pytest.approx(1 / 3)


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_rewriting_a_key_counts_one_entry(tmp_path, where):
    cache = SampleCache(tmp_path if where == "disk" else None)
    small, large = {"a": np.arange(10)}, {"a": np.random.default_rng(0).random(500)}
    cache.put("k", small)
    cache.put("k", large)
    s = cache.stats()
    assert (s.entries, s.writes) == (1, 2)
    assert s.size_bytes == len(encode_entry(large)[0])
    if where == "disk":
        assert s.size_bytes == os.path.getsize(cache.path("k"))


def test_disk_cache_survives_restart(tmp_path):
    arrays = example_arrays()
    first = SampleCache(tmp_path)
    assert first.mode == "disk"
    first.put("k" * 32, arrays)
    path = first.path("k" * 32)
    assert os.path.isfile(path) and path.startswith(str(tmp_path))
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
    second = SampleCache(tmp_path)               # a new process / run
    assert second.stats().entries == 1
    assert second.stats().size_bytes == os.path.getsize(path)
    assert_same(second.get("k" * 32), arrays)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_disk_entry_is_a_logged_miss_then_overwritten(tmp_path, caplog, damage):
    arrays = example_arrays()
    cache = SampleCache(tmp_path)
    key = "c" * 32
    cache.put(key, arrays)
    data = bytearray(open(cache.path(key), "rb").read())
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = b""
    open(cache.path(key), "wb").write(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.cache"):
        assert cache.get(key) is None
        assert cache.get(key) is None            # still corrupt: logged once only
    assert caplog.text.count("is corrupt") == 1
    assert cache.stats().corrupt == 2
    cache.put(key, arrays)                        # the caller recomputes
    assert_same(cache.get(key), arrays)
    assert cache.stats().entries == 1             # the rewrite replaced the damaged file


_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from mrcnn.data.cache import SampleCache

    cache = SampleCache(sys.argv[1])
    worker = int(sys.argv[2])
    for step in range(60):
        for k in range(8):
            key = f"{k:032d}"
            expected = {"image": np.full((64, 48, 3), k, np.uint8),
                        "masks": (np.arange(300 * 7).reshape(30, 10, 7) % (k + 2)) == 0,
                        "k": np.array([k, worker])}
            got = cache.get(key)
            if got is not None:
                for name in ("image", "masks"):
                    if not np.array_equal(got[name], expected[name]):
                        sys.exit(f"worker {worker}: wrong data for {key}/{name}")
                if got["k"][0] != k:
                    sys.exit(f"worker {worker}: entry {key} holds k={got['k'][0]}")
            # rewrite every time, so the other process reads while files are replaced
            cache.put(key, expected)
    print(cache.stats().hits, cache.stats().corrupt)
""")


def test_two_processes_share_a_disk_cache(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    counts = [[int(v) for v in out.split()[-2:]] for out, _ in outputs]
    # 480 lookups each; only the first lookup of each key can miss; no torn reads
    assert all(hits >= 480 - 8 and corrupt == 0 for hits, corrupt in counts), counts
    reader = SampleCache(tmp_path)
    assert reader.stats().entries == 8
    assert reader.stats().corrupt == 0
    got = reader.get(f"{5:032d}")
    np.testing.assert_array_equal(got["image"], np.full((64, 48, 3), 5, np.uint8))
    leftovers = [n for _, _, names in os.walk(tmp_path) for n in names if n.endswith(".tmp")]
    assert leftovers == []


def test_counters_are_shared_with_forked_workers():
    multiprocessing = pytest.importorskip("multiprocessing")
    cache = SampleCache()
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_lookup_twice, args=(cache,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    s = cache.stats()
    assert (s.misses, s.writes, s.hits) == (1, 1, 1)


def _lookup_twice(cache):
    cache.get("x")
    cache.put("x", {"a": np.arange(5)})
    cache.get("x")


class Tiny(Dataset):
    def __init__(self, path=None):
        super().__init__()
        self.add_class("t", 1, "thing")
        self.add_image("t", image_id="a", path=path, annotations=["1 3", "7 2"],
                       extra=np.arange(4))


def test_sample_key_covers_identity_config_classes_and_file(tmp_path):
    fields = {"IMAGE_MIN_DIM": 64, "MINI_MASK_SHAPE": (28, 28)}
    ds = Tiny()
    key = sample_key(ds, 0, fields, "boxmasks")
    assert key == sample_key(Tiny(), 0, dict(fields), "boxmasks")   # stable
    assert len(key) == 32
    assert key != sample_key(ds, 0, {**fields, "IMAGE_MIN_DIM": 128}, "boxmasks")
    assert key != sample_key(ds, 0, {**fields, "MINI_MASK_SHAPE": (56, 56)}, "boxmasks")
    assert key != sample_key(ds, 0, fields, "layers")
    changed = Tiny()
    changed.image_info[0]["annotations"][1] = "7 3"
    assert key != sample_key(changed, 0, fields, "boxmasks")
    changed = Tiny()
    changed.image_info[0]["extra"][2] = 9
    assert key != sample_key(changed, 0, fields, "boxmasks")
    more_classes = Tiny()
    more_classes.add_class("t", 2, "other")
    assert key != sample_key(more_classes, 0, fields, "boxmasks")
    flipped = Tiny()
    flipped.image_info[0]["horizontal_flip"] = True
    assert key != sample_key(flipped, 0, fields, "boxmasks")

    image = tmp_path / "a.png"
    image.write_bytes(b"12345")
    with_file = sample_key(Tiny(str(image)), 0, fields, "boxmasks")
    image.write_bytes(b"123456")                               # size (and mtime) change
    assert with_file != sample_key(Tiny(str(image)), 0, fields, "boxmasks")


def test_dataset_cache_key_overrides_image_info():
    class Custom(Tiny):
        version = 1

        def cache_key(self, image_id):
            return ("custom", image_id, self.version)

    a, b = Custom(), Custom()
    b.image_info[0]["annotations"] = []          # ignored: cache_key decides
    fields = {"F": 1}
    assert sample_key(a, 0, fields, "layers") == sample_key(b, 0, fields, "layers")
    b.version = 2
    assert sample_key(a, 0, fields, "layers") != sample_key(b, 0, fields, "layers")

    class Default(Tiny):
        def cache_key(self, image_id):
            return None                          # None: fall back to image_info

    assert sample_key(Default(), 0, fields, "layers") != sample_key(a, 0, fields, "layers")
    changed = Default()
    changed.image_info[0]["annotations"] = []
    assert sample_key(Default(), 0, fields, "layers") != sample_key(changed, 0, fields, "layers")


def test_open_cache_follows_config(tmp_path):
    def config(**values):
        return type("C", (Config,), {"NAME": "c", "NUM_CLASSES": 2, **values})()

    assert open_cache(config(CACHE=False)) is None
    memory = open_cache(config(CACHE=True, CACHE_MAX_BYTES=1000))
    assert memory.mode == "memory" and memory.max_bytes == 1000
    disk = open_cache(config(CACHE="disk"), model_dir=str(tmp_path))
    assert disk.directory == os.path.join(str(tmp_path), "cache")
    explicit = open_cache(config(CACHE="disk", CACHE_DIR=str(tmp_path / "x")))
    assert explicit.directory == str(tmp_path / "x")
    with pytest.raises(ValueError, match="CACHE_DIR or a model_dir"):
        open_cache(config(CACHE="disk"))


def test_digest_distinguishes_types_and_orders():
    d = cache_mod.digest
    assert d(1) != d(True) != d(1.0)
    assert d([1, 2]) != d([2, 1])
    assert d({"a": 1, "b": 2}) == d({"b": 2, "a": 1})
    assert d(np.arange(3, dtype=np.int32)) != d(np.arange(3, dtype=np.int64))
    assert d(np.zeros((2, 3))) != d(np.zeros((3, 2)))
