import numpy as np
import pytest

from mrcnn.data.cache import SampleCache, encode_entry
from mrcnn.training.callbacks import CacheStatsLogger


def test_logger_reports_the_epoch_and_the_cache():
    cache = SampleCache()
    arrays = {"a": np.zeros((100, 100), np.uint8)}
    blob, raw = encode_entry(arrays)
    cache.put("old", arrays)                       # before the epoch: not counted in it
    lines = []
    logger = CacheStatsLogger(cache, print_fn=lines.append)
    logger.on_epoch_begin(0)
    cache.get("old")
    cache.get("old")
    cache.get("new")
    cache.put("new", arrays)
    logs = {"loss": 1.0}
    logger.on_epoch_end(0, logs)
    assert logs["cache_hits"] == 2 and logs["cache_misses"] == 1
    assert logs["cache_hit_rate"] == pytest.approx(2 / 3)
    assert logs["cache_mb"] == pytest.approx(2 * len(blob) / 2 ** 20)
    # 2 writes + 2 reads of 10000 raw bytes each, every one len(blob) compressed
    assert logs["cache_ratio"] == pytest.approx(raw / len(blob))
    assert len(lines) == 1
    assert lines[0].startswith("sample cache (memory), epoch 1: hits 2 (66.7%), misses 1")
    assert "cache holds 2 entries" in lines[0]


def test_logger_quiet_still_fills_logs():
    cache = SampleCache()
    lines = []
    logger = CacheStatsLogger(cache, verbose=0, print_fn=lines.append)
    logger.on_epoch_begin(3)
    cache.get("x")
    logs = {}
    logger.on_epoch_end(3, logs)
    assert lines == [] and logs["cache_misses"] == 1 and logs["cache_hit_rate"] == 0
