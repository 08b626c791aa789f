"""LZ4-compressed cache of prepared training samples (memory or disk)."""

from mrcnn.data.cache.store import *  # noqa: F401,F403
from mrcnn.data.cache.store import __all__  # noqa: F401
