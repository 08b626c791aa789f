"""glibc's allocator thresholds, put back after TensorFlow's tf.data generator sets them.

TensorFlow 2.21's ``GeneratorDataset`` (what ``keras.Model.fit`` builds from a
``PyDataset`` such as `mrcnn.data.generator.DataGenerator`) calls
``mallopt(M_TRIM_THRESHOLD, 128 KiB)`` when it first runs (it logs "Memory
patch applied: M_TRIM_THRESHOLD=128 kb was set."). Setting any threshold
turns off glibc's dynamic mmap threshold, which otherwise rises to 32 MiB as
large buffers are freed: from then on every buffer over 128 KiB (most
activations and gradients) is a fresh ``mmap``, its pages zero-filled by the
kernel on first touch and unmapped on free, and the heap is trimmed whenever
128 KiB lie free at its top. Measured on a 2-core AMD EPYC, the shapes
sample for 2 epochs (``python samples/shapes/train.py --epochs 2``, 4 images
of 128x128 per step): with TensorFlow's setting 14.9 million page faults,
680 ms per step in the second epoch, 54 s of the run in the kernel; with the
thresholds below 0.48 million, 383 ms, 6 s; peak RSS 1.27 GB instead of
1.18 GB (benchmarks/RESULTS.md, "the allocator").

`keep_large_buffers` sets what glibc's dynamic rule reaches on its own: mmap
only for buffers of 32 MiB and more, and trim the heap top when 64 MiB lie
free. `AllocatorThresholds` (a callback in every ``MaskRCNN.train``) calls it
when a training or validation pass begins, after TensorFlow's patch. It does
nothing where the C library is not glibc, and nothing when the environment
sets ``MRCNN_MALLOPT=0`` (keep TensorFlow's setting).
"""

import ctypes
import ctypes.util
import os
import platform

import keras

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20     # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 64 << 20     # twice the mmap threshold, as glibc's dynamic rule keeps it

_libc = None


def _glibc():
    """glibc loaded with ctypes, or None where the C library is another one (macOS, musl)."""
    global _libc
    if _libc is None:
        _libc = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            except OSError:
                _libc = False
    return _libc or None


def enabled():
    """Whether `keep_large_buffers` acts here: glibc, and ``MRCNN_MALLOPT`` is not "0"."""
    return os.environ.get("MRCNN_MALLOPT", "1") != "0" and _glibc() is not None


def keep_large_buffers(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD):
    """Set glibc's mmap and trim thresholds (bytes); returns whether they were set.

    Raises:
        ValueError: a threshold that is not a positive number of bytes below 2 GiB
            (mallopt takes a C int).
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2 ** 31:
            raise ValueError(f"{name}={value!r}: expected a number of bytes in [1, 2**31)")
    if not enabled():
        return False
    libc = _glibc()
    done = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and done


class AllocatorThresholds(keras.callbacks.Callback):
    """Calls `keep_large_buffers` as each training and validation pass begins.

    TensorFlow applies its setting when a generator dataset first runs, which
    may be on its prefetch thread after the pass began; so this runs on the
    first two batches of every epoch and validation pass (a mallopt call costs
    microseconds).
    """

    def on_train_batch_begin(self, batch, logs=None):
        if batch < 2:
            keep_large_buffers()

    def on_test_batch_begin(self, batch, logs=None):
        if batch < 2:
            keep_large_buffers()
