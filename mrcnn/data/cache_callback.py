"""Keras callback that reports the sample cache's statistics every epoch."""

import keras

__all__ = ["CacheStatsLogger"]


class CacheStatsLogger(keras.callbacks.Callback):
    """Print the cache's hits, misses, size and compression after every epoch.

    The numbers of the epoch are also added to the epoch logs, so History,
    CSVLogger and TensorBoard record them (place this callback before
    CSVLogger): ``cache_hits``, ``cache_misses``, ``cache_hit_rate``,
    ``cache_mb`` (size of the cache) and ``cache_ratio`` (compression).

    Args:
        cache: the `mrcnn.data.cache.SampleCache` of the generators.
        verbose: print the line (1) or only add the logs (0).
        print_fn: where the line goes (default: print).
    """

    def __init__(self, cache, verbose=1, print_fn=print):
        super().__init__()
        self.cache = cache
        self.verbose = verbose
        self.print_fn = print_fn
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self.cache.stats()

    def on_epoch_end(self, epoch, logs=None):
        now = self.cache.stats()
        epoch_stats = now - (self._start or type(now)())
        if self.verbose:
            self.print_fn(f"sample cache ({self.cache.mode}), epoch {epoch + 1}: "
                          f"{epoch_stats.activity()}; cache holds {now.holdings()}")
        if logs is not None:
            logs.update({
                "cache_hits": float(epoch_stats.hits),
                "cache_misses": float(epoch_stats.misses),
                "cache_hit_rate": float(epoch_stats.hit_rate),
                "cache_mb": now.size_bytes / 2 ** 20,
                "cache_ratio": float(now.ratio),
            })
