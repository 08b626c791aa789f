import csv
import json
import os

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from mrcnn.datasets import synthetic_cells
from mrcnn.datasets.sartorius import SartoriusDataset
from mrcnn.datasets.synthetic_cells import (ensure_synthetic_sartorius, make_cell_image,
                                            synthetic_sartorius_image,
                                            write_synthetic_sartorius)

# Backend-independent: generates and reads Sartorius-like images and CSVs in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent

COLUMNS = ["id", "annotation", "width", "height", "cell_type", "plate_time", "sample_date",
           "sample_id", "elapsed_timedelta"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Three full-size images (one per cell type) written in the Sartorius layout."""
    root = tmp_path_factory.mktemp("synthetic")
    ids = write_synthetic_sartorius(root, n_images=3, seed=5)
    return root, ids


def test_files_and_columns_are_the_competition_format(written):
    root, ids = written
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    assert [r[0] for r in rows[1:]] == sorted([r[0] for r in rows[1:]], key=ids.index)
    by_id = {}
    for r in rows[1:]:
        by_id.setdefault(r[0], []).append(r)
    assert list(by_id) == ids
    for image_id, image_rows in by_id.items():
        assert len(image_id) == 12 and int(image_id, 16) >= 0
        assert {(r[2], r[3]) for r in image_rows} == {("704", "520")}
        assert len({r[4] for r in image_rows}) == 1          # one cell type per image
        assert len({tuple(r[5:]) for r in image_rows}) == 1   # metadata per image
        image = np.asarray(Image.open(root / "train" / f"{image_id}.png"))
        assert image.shape == (520, 704) and image.dtype == np.uint8
    assert [by_id[i][0][4] for i in ids] == ["astro", "cort", "shsy5y"]
    plate_time, date, sample_id, elapsed = by_id[ids[2]][0][5:]
    assert plate_time == "36h00m00s" and elapsed == "1 days 12:00:00"
    assert date == "2021-01-03" and sample_id.startswith("shsy5y[synthetic]_")


def test_round_trip_through_sartorius_dataset(written):
    root, ids = written
    ds = SartoriusDataset()
    ds.load_sartorius(root)
    ds.prepare()
    for i, image_id in enumerate(ids):
        expected_id, cell_type, image, masks = synthetic_sartorius_image(5, i)
        assert ds.image_info[i]["id"] == expected_id == image_id
        loaded, class_ids = ds.load_mask(i)
        assert loaded.shape == masks.shape
        np.testing.assert_array_equal(loaded, masks)
        np.testing.assert_array_equal(class_ids, ds.class_names.index(cell_type))
        np.testing.assert_array_equal(ds.load_image(i), np.repeat(image[..., None], 3, -1))


def _equivalent_radius(masks):
    return np.sqrt(masks.sum(axis=(0, 1)) / np.pi)


def _elongation(mask):
    """sqrt of the ratio of the second-moment eigenvalues (1 for a disk)."""
    ys, xs = np.nonzero(mask)
    evals = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
    return np.sqrt(evals[1] / max(evals[0], 1e-9))


def test_cell_types_have_their_counts_sizes_and_shapes():
    rng = np.random.default_rng(0)
    stats = {}
    for cell_type in ("cort", "shsy5y", "astro"):
        image, masks = make_cell_image(rng, cell_type)
        assert image.shape == (520, 704) and image.dtype == np.uint8
        assert masks.shape[:2] == (520, 704) and masks.dtype == bool
        assert masks.sum(axis=(0, 1)).min() >= 20
        elongation = [_elongation(masks[..., i]) for i in range(masks.shape[-1])]
        stats[cell_type] = (masks.shape[-1], np.median(_equivalent_radius(masks)),
                            np.median(elongation))
    n, radius, elongation = stats["cort"]
    assert 25 <= n <= 80 and 6 <= radius <= 12 and elongation < 1.4
    n, radius, elongation = stats["shsy5y"]
    assert 25 <= n <= 100 and elongation > 2.0
    n, radius, elongation = stats["astro"]
    assert 8 <= n <= 30 and 18 <= radius <= 45


def test_overlaps_exist_but_are_small():
    shared, covered, overlapping_pairs, fractions = 0, 0, 0, []
    for i in range(3):
        _, _, _, masks = synthetic_sartorius_image(11, i, 260, 352)
        coverage = masks.sum(axis=-1)
        shared += np.count_nonzero(coverage > 1)
        covered += np.count_nonzero(coverage > 0)
        flat = masks.reshape(-1, masks.shape[-1]).astype(np.float32)
        overlap = flat.T @ flat                    # [N, N] pixels shared by each pair
        overlapping_pairs += (np.count_nonzero(overlap) - masks.shape[-1]) // 2
        # share of each instance's area that other instances also cover
        fractions.append((flat * (coverage.reshape(-1, 1) > 1)).sum(axis=0) / np.diag(overlap))
    fractions = np.concatenate(fractions)
    assert overlapping_pairs > 0
    assert shared / covered < 0.05
    assert np.percentile(fractions, 90) < 0.2 and fractions.max() < 0.6


def test_phase_contrast_look():
    _, _, image, masks = synthetic_sartorius_image(2, 1)       # cort
    image = image.astype(np.float64)
    cells = masks.any(axis=-1)
    ring = scipy.ndimage.binary_dilation(cells, iterations=2) & ~cells
    far = ~scipy.ndimage.binary_dilation(cells, iterations=8)
    background = np.median(image[far])
    assert 115 <= background <= 141
    assert image[ring].mean() > background + 8          # bright halo around each cell
    edge = cells & ~scipy.ndimage.binary_erosion(cells, iterations=2)
    assert image[edge].mean() < image[ring].mean() - 10   # dark rim inside the boundary
    assert 2 < image[far].std() < 15                     # textured, not flat


def test_generation_is_deterministic_per_seed_and_index():
    a = synthetic_sartorius_image(3, 4, 96, 128)
    b = synthetic_sartorius_image(3, 4, 96, 128)
    c = synthetic_sartorius_image(4, 4, 96, 128)
    assert a[0] == b[0] and a[1] == b[1] == "cort"
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(a[2], c[2])


def test_ensure_writes_once_and_rewrites_on_new_parameters(tmp_path):
    cache = tmp_path / "cells"
    data_dir = ensure_synthetic_sartorius(cache, n_images=2, seed=1, height=96, width=128)
    assert data_dir == str(cache)
    marker = json.loads((cache / ".synthetic_sartorius.json").read_text())
    assert marker == {"version": synthetic_cells.GENERATOR_VERSION, "n_images": 2, "seed": 1,
                      "height": 96, "width": 128}
    csv_path = cache / "train.csv"
    os.utime(csv_path, ns=(1, 1))
    ensure_synthetic_sartorius(cache, n_images=2, seed=1, height=96, width=128)
    assert os.stat(csv_path).st_mtime_ns == 1                 # not rewritten
    ensure_synthetic_sartorius(cache, n_images=3, seed=1, height=96, width=128)
    with open(csv_path) as f:
        assert len({row["id"] for row in csv.DictReader(f)}) == 3
    assert len(os.listdir(cache / "train")) == 3
    assert sorted(os.listdir(tmp_path)) == ["cells"]            # no temp folders left


def test_ensure_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a synthetic Sartorius cache"):
        ensure_synthetic_sartorius(tmp_path, n_images=1, height=64, width=64)
    assert os.listdir(tmp_path) == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_synthetic_sartorius(empty, n_images=1, height=64, width=64)
    assert (empty / "train.csv").is_file()


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell_type must be one of"):
        make_cell_image(0, "neuron")
    with pytest.raises(ValueError, match="n_images must be a positive integer"):
        write_synthetic_sartorius("/nonexistent", n_images=0)
