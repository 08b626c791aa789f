"""LZ4 cache of prepared training samples, in memory or on disk.

Preparing a sample (image decode, hundreds of RLE mask decodes, resizing,
boxes, mini masks) is the CPU cost that starves the GPU on a 2-core Kaggle
machine (seed 000). The generator caches the deterministic part of that work
here; random augmentation runs after the cache, so every epoch stays random.

    cache = open_cache(config, model_dir)          # Config.CACHE, or None
    key = sample_key(dataset, image_id, fields, "boxmasks")
    arrays = cache.get_or_compute(key, lambda: prepare(image_id))

Modules:
- `entry`: an entry is a dict of NumPy arrays serialized as one blob
  (header with magic, FORMAT_VERSION, lengths and a CRC-32; a JSON manifest;
  an LZ4 payload, bool arrays bit-packed, repeated gray channels stored
  once); the header records a fingerprint of the entry's own key. Every
  read checks the header, lengths and CRC, and the key the entry is read
  under; a corrupt, truncated or swapped entry raises `CacheEntryError`.
- `keys`: `sample_key` hashes everything that changes a prepared sample:
  the dataset class, the image's identity (``dataset.cache_key(image_id)``
  when the dataset defines it, else its ``image_info`` entry plus the
  file's size and modification time), the dataset's classes, the config
  fields used and FORMAT_VERSION. Changing any of them misses the cache.
- `stats`: hit/miss counters and byte counts (`CacheStats`), shared with
  worker processes and reported per epoch by
  `mrcnn.training.callbacks.CacheStatsLogger`.
- `store`: `SampleCache` and `open_cache`. Modes (Config.CACHE): True /
  "memory" (a dict of compressed entries in this process; with
  ``use_multiprocessing`` each worker process has its own, so use "disk"),
  or "disk" (one file per entry under ``<directory>/v<FORMAT_VERSION>/``,
  written to a temporary file and renamed, so processes sharing the folder
  never read a torn entry; it survives restarts). Past ``max_bytes``
  (Config.CACHE_MAX_BYTES) new entries are not stored. A corrupt entry (or
  one holding another key's sample) is logged once, counted, and reported as
  a miss so the caller recomputes and overwrites it: never a crash, never
  wrong data.
"""

from mrcnn.data.cache.entry import FORMAT_VERSION, CacheEntryError, decode_entry, encode_entry
from mrcnn.data.cache.keys import digest, sample_key
from mrcnn.data.cache.stats import CacheStats
from mrcnn.data.cache.store import SampleCache, open_cache

__all__ = ["FORMAT_VERSION", "CacheEntryError", "CacheStats", "SampleCache", "encode_entry",
           "decode_entry", "sample_key", "digest", "open_cache"]
