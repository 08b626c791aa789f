"""Cache statistics: `CacheStats` snapshots and the counters behind them.

The counters live in shared memory (`SharedCounters`), so worker processes
started by the data pipeline add to the parent's numbers; a `CacheStats`
snapshot is an immutable copy, and two snapshots subtract into the numbers
of an epoch (reported by `mrcnn.training.callbacks.CacheStatsLogger`).
"""

import multiprocessing
import multiprocessing.context
import threading
from dataclasses import dataclass, fields

__all__ = ["CacheStats", "SharedCounters"]


@dataclass(frozen=True)
class CacheStats:
    """Counters of a cache; subtract two snapshots for the numbers of an epoch.

    Attributes:
        hits, misses: lookups that found / did not find a valid entry.
        corrupt: entries found corrupt (also counted as misses).
        writes: entries stored; skipped: entries not stored (budget, I/O error).
        read_bytes, read_raw: compressed / uncompressed bytes of the hits.
        write_bytes, write_raw: compressed / uncompressed bytes of the writes.
        entries, size_bytes: what the cache holds (disk: found at opening plus
            written since).
    """

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    skipped: int = 0
    read_bytes: int = 0
    read_raw: int = 0
    write_bytes: int = 0
    write_raw: int = 0
    entries: int = 0
    size_bytes: int = 0

    def __sub__(self, other):
        return CacheStats(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                             for f in fields(self)})

    @property
    def lookups(self):
        return self.hits + self.misses

    @property
    def hit_rate(self):
        """Hits / lookups (0 without lookups)."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def ratio(self):
        """Compression ratio, uncompressed / compressed, over reads and writes."""
        stored = self.read_bytes + self.write_bytes
        return (self.read_raw + self.write_raw) / stored if stored else 0.0

    def activity(self):
        """Lookups and writes: "hits 590 (97.4%), misses 16, corrupt 0, stored 16 (skipped 0)"."""
        return (f"hits {self.hits} ({100 * self.hit_rate:.1f}%), misses {self.misses}, "
                f"corrupt {self.corrupt}, stored {self.writes} (skipped {self.skipped})")

    def holdings(self):
        """Contents, e.g. "606 entries, 412.3 MB, compression 3.10x"."""
        return (f"{self.entries} entries, {self.size_bytes / 2 ** 20:.1f} MB, "
                f"compression {self.ratio:.2f}x")

    def summary(self):
        """One line for the training log."""
        return f"{self.activity()}; cache holds {self.holdings()}"


_COUNTERS = tuple(f.name for f in fields(CacheStats))  # shared-memory slot order


class _LocalArray(list):
    """Stand-in for multiprocessing.Array where shared memory is unavailable."""

    def __init__(self, size):
        super().__init__([0] * size)
        self._lock = threading.Lock()

    def get_lock(self):
        return self._lock

    def __reduce__(self):
        return (_LocalArray, (len(self),))


class SharedCounters:
    """Integer counters in shared memory, so worker processes update the parent's.

    One counter per `CacheStats` field; ``add(hits=1, read_bytes=n)`` adds,
    ``snapshot()`` reads them all at once. Where shared memory is missing
    the counters count this process only.

    Args:
        values: initial values, in `CacheStats` field order (default zeros).
    """

    def __init__(self, values=None):
        try:
            self._array = multiprocessing.Array("q", len(_COUNTERS))
        except OSError:  # no shared memory here: counters of this process only
            self._array = _LocalArray(len(_COUNTERS))
        for i, value in enumerate(values or ()):
            self._array[i] = value

    def add(self, **amounts):
        with self._array.get_lock():
            for name, amount in amounts.items():
                self._array[_COUNTERS.index(name)] += int(amount)

    def snapshot(self):
        with self._array.get_lock():
            return CacheStats(*self._array[:])

    def __getstate__(self):
        # Shared memory travels only to processes being started (spawn);
        # any other copy (pickle, deepcopy) gets independent counters.
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"array": self._array}
        return {"values": list(self._array[:])}

    def __setstate__(self, state):
        if "array" in state:
            self._array = state["array"]
        else:
            self.__init__(state["values"])
