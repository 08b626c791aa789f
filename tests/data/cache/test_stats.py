import pickle

import numpy as np
import pytest

from mrcnn.data.cache import CacheStats, SampleCache
from mrcnn.data.cache.stats import SharedCounters

# Backend-independent: cache hit / miss counters; no Keras op.
pytestmark = pytest.mark.backend_independent


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


def test_stats_subtract_and_summarize():
    before = CacheStats(hits=10, misses=2, writes=2, read_bytes=100, read_raw=300,
                        entries=2, size_bytes=2 * 2 ** 20)
    after = CacheStats(hits=40, misses=2, writes=2, read_bytes=400, read_raw=1200,
                       entries=2, size_bytes=2 * 2 ** 20)
    epoch = after - before
    assert (epoch.hits, epoch.misses, epoch.lookups) == (30, 0, 30)
    assert epoch.hit_rate == 1.0 and CacheStats().hit_rate == 0.0
    assert after.ratio == pytest.approx(3.0) and CacheStats().ratio == 0.0
    assert after.summary() == ("hits 40 (95.2%), misses 2, corrupt 0, stored 2 (skipped 0); "
                               "cache holds 2 entries, 2.0 MB, compression 3.00x")


def test_shared_counters_add_snapshot_and_copy():
    counters = SharedCounters()
    counters.add(hits=2, read_bytes=7)
    counters.add(hits=1)
    assert counters.snapshot() == CacheStats(hits=3, read_bytes=7)
    copy = pickle.loads(pickle.dumps(counters))     # not a spawn: independent counters
    copy.add(hits=5)
    assert copy.snapshot().hits == 8 and counters.snapshot().hits == 3
