import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data.cache import SampleCache, encode_entry, open_cache

# Backend-independent: the LZ4 sample cache on disk (its worker subprocesses import no Keras).
pytestmark = pytest.mark.backend_independent


def test_memory_cache_counts_and_budget(example_arrays, assert_same):
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


def test_disk_cache_survives_restart(tmp_path, example_arrays, assert_same):
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
def test_corrupt_disk_entry_is_a_logged_miss_then_overwritten(tmp_path, caplog, damage,
                                                              example_arrays, assert_same):
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


def test_swapped_disk_entries_are_corrupt_misses_then_rewritten(tmp_path, caplog,
                                                                example_arrays, assert_same):
    one, two = example_arrays(1), example_arrays(2)
    cache = SampleCache(tmp_path)
    cache.put("1" * 32, one)
    cache.put("2" * 32, two)
    first, second = cache.path("1" * 32), cache.path("2" * 32)
    a, b = open(first, "rb").read(), open(second, "rb").read()
    open(first, "wb").write(b)                     # each file now holds the other's entry
    open(second, "wb").write(a)
    reader = SampleCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.cache"):
        assert reader.get("1" * 32) is None and reader.get("2" * 32) is None
    s = reader.stats()
    assert (s.hits, s.misses, s.corrupt) == (0, 2, 2)
    assert (f"cache entry {first} is corrupt (holds the entry of another key, not of "
            f"'{'1' * 32}' (a file copied or swapped onto another entry's name)" in caplog.text)
    reader.put("1" * 32, one)                      # the caller recomputes and rewrites
    assert_same(reader.get("1" * 32), one)


def test_other_format_versions_are_left_alone_and_reported(tmp_path, caplog):
    old = tmp_path / "v1" / "ab"
    old.mkdir(parents=True)
    (old / ("ab" * 16 + ".lz4")).write_bytes(b"x" * 3 * 2 ** 20)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.cache"):
        cache = SampleCache(tmp_path)
    assert cache.stats().entries == 0                # not read, not counted
    assert os.path.isfile(old / ("ab" * 16 + ".lz4"))   # not deleted either
    assert (f"sample cache {tmp_path / 'v1'} holds 1 entry files (3.0 MB) of format version 1"
            in caplog.text)
    assert "delete that folder" in caplog.text


def test_abandoned_entry_writes_are_removed_when_the_cache_opens(tmp_path, monkeypatch):
    import time

    cache = SampleCache(tmp_path)
    cache.put("k1", {"a": np.arange(5)})
    folder = os.path.dirname(cache.path("k1"))
    stale = os.path.join(folder, ".k2.abc.tmp")
    recent = os.path.join(folder, ".k3.def.tmp")
    for path in (stale, recent):
        with open(path, "wb") as f:
            f.write(b"half an entry")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    reopened = SampleCache(tmp_path)
    assert not os.path.exists(stale) and os.path.exists(recent)   # another process may write
    assert reopened.stats().entries == 1
    np.testing.assert_array_equal(reopened.get("k1")["a"], np.arange(5))
    monkeypatch.setenv("MRCNN_PARTIAL_SAVE_GRACE_S", "0")
    SampleCache(tmp_path)
    assert not os.path.exists(recent)


# A process that stops in the middle of writing an entry: its temporary file is
# written, the rename waits until the file "go" appears (or the process is killed).
_PAUSED_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from mrcnn.data.cache import store

    folder, key = sys.argv[1], sys.argv[2]
    real_replace = store.os.replace

    def paused_replace(src, dst):
        open(os.path.join(folder, "writing"), "w").write(src)
        while not os.path.exists(os.path.join(folder, "go")):
            time.sleep(0.02)
        real_replace(src, dst)

    cache = store.SampleCache(os.path.join(folder, "cache"))
    store.os.replace = paused_replace
    cache.put(key, {"a": np.arange(7)})
    print("written")
""")


def _paused_writer(folder, key):
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_WRITER, str(folder), key],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = folder / "writing"
    for _ in range(1200):
        if marker.exists() and marker.read_text():
            return proc, marker.read_text()
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1])
        import time
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the writer did not start writing")


def test_opening_a_shared_cache_keeps_a_live_writers_file(tmp_path, monkeypatch):
    """Two processes on one cache folder: opening it never removes another's write in progress."""
    monkeypatch.setenv("MRCNN_PARTIAL_SAVE_GRACE_S", "0")     # age alone would remove it
    writer, tmp = _paused_writer(tmp_path, "k1")
    try:
        name = os.path.basename(tmp)
        assert name.startswith(f".k1.p{writer.pid}-") and name.endswith(".tmp")
        opened = SampleCache(tmp_path / "cache")               # this process, meanwhile
        assert os.path.exists(tmp), "a live writer's temporary file was removed"
        assert opened.get("k1") is None                        # not an entry yet
        (tmp_path / "go").write_text("")
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and out.strip() == "written", err
    finally:
        if writer.poll() is None:
            writer.kill()
    assert not os.path.exists(tmp)
    np.testing.assert_array_equal(opened.get("k1")["a"], np.arange(7))


def test_opening_a_cache_removes_the_write_of_a_killed_process(tmp_path, monkeypatch):
    monkeypatch.delenv("MRCNN_PARTIAL_SAVE_GRACE_S", raising=False)     # 600 s: age won't do it
    writer, tmp = _paused_writer(tmp_path, "k2")
    writer.kill()
    writer.wait(timeout=60)
    assert os.path.exists(tmp)                 # what the kill left behind, seconds old
    SampleCache(tmp_path / "cache")
    assert not os.path.exists(tmp)             # its writer is gone: provably abandoned


def test_which_temporary_files_count_as_abandoned(tmp_path, monkeypatch):
    import time

    from mrcnn.data.cache import store

    cache = SampleCache(tmp_path)
    cache.put("k1", {"a": np.arange(3)})
    folder = os.path.dirname(cache.path("k1"))
    host = store._host()
    started = store._process_started(os.getpid())
    assert started is not None and started <= time.time()

    def temp(name, age=0.0):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(b"part of an entry")
        written = time.time() - age
        os.utime(path, (written, written))
        return path

    mine = temp(f".k2.p{os.getpid()}-{host}.abc.tmp")                    # a live writer
    reused = temp(f".k3.p{os.getpid()}-{host}.def.tmp", age=time.time() - started + 60)
    other_host_new = temp(".k4.p1-elsewhere.ghi.tmp")
    other_host_old = temp(".k5.p1-elsewhere.jkl.tmp", age=3600)
    SampleCache(tmp_path)
    assert os.path.exists(mine)                 # this process is alive and wrote it
    assert not os.path.exists(reused)           # written before this process (pid reused)
    assert os.path.exists(other_host_new)       # another host's: only age tells
    assert not os.path.exists(other_host_old)
    assert not store.writer_alive(os.getpid(), started - 60)
    assert store.writer_alive(os.getpid(), time.time())


def test_a_read_only_cache_stores_nothing(tmp_path, example_arrays):
    arrays = example_arrays()
    reader = SampleCache(tmp_path, writes=False)
    assert not reader.put("a", arrays)
    assert reader.get("a") is None and reader.stats().writes == 0
    assert not [n for _, _, names in os.walk(tmp_path) for n in names if n.endswith(".lz4")]
    SampleCache(tmp_path).put("a", arrays)      # the chief writes it; the reader then finds it
    assert reader.get("a") is not None
    config = type("C", (Config,), {"NAME": "c", "NUM_CLASSES": 2, "CACHE": "disk", "CACHE_DIR": str(tmp_path)})()
    assert not open_cache(config, writes=False).writes
    config = type("C", (Config,), {"NAME": "c", "NUM_CLASSES": 2, "CACHE": True})()
    assert open_cache(config, writes=False).writes    # a memory cache is this process's own
