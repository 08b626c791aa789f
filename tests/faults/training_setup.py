"""What the victim trains: the tiny config with the disk cache, its data and its length.

Shared by `tests/faults/victim.py` (the killed process) and the tests that
inspect what it left (they rebuild the same model to load its checkpoints).
"""

import os

from tests.model_helpers import make_config, shapes

STEPS_PER_EPOCH = 3
VALIDATION_STEPS = 1
TRAIN_IMAGES = 12
VAL_IMAGES = 4
EPOCHS = 4


def cache_dir(model_dir):
    """The disk cache folder of a victim run."""
    return os.path.join(os.fspath(model_dir), "cache")


def victim_config(model_dir):
    """The tiny config (64x64 images, small-cnn) with ``CACHE="disk"`` under ``model_dir/cache``."""
    return make_config(CACHE="disk", CACHE_DIR=cache_dir(model_dir),
                       STEPS_PER_EPOCH=STEPS_PER_EPOCH, VALIDATION_STEPS=VALIDATION_STEPS)


def victim_data(seed):
    """(train, val) shapes datasets of a seed."""
    return shapes(TRAIN_IMAGES, seed=seed), shapes(VAL_IMAGES, seed=seed + 1000)
