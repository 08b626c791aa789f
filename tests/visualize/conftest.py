"""Pictures in these tests are rendered headless: the Agg backend, set before pyplot loads."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
