"""Throughput of the training data pipeline on Sartorius-shaped data, cold vs warm cache.

Generates Sartorius-like images in a temporary folder: 520x704 grayscale PNG
files with 100-700 overlapping elliptic cells each, annotated as row-major
run-length strings as in the competition's train.csv. The dataset decodes the
PNG and every RLE on each load, as a Matterport-style user dataset does. The
config follows seed 000 (IMAGE_SHAPE 576x704, MINI_MASK_SHAPE 112x112,
MAX_GT_INSTANCES 790, batch size 1).

Measured with `DataGenerator` (full samples: image, meta, RPN targets, boxes,
class ids, mini masks):
- cold: first epoch with an empty in-memory cache (every sample prepared and
  stored);
- warm: later epochs (every sample and anchor matching read from the cache);
- other rows: no cache, random flips, a disk cache read by two worker
  processes, and the resampling path (256x256 crops + `cell_augmentation`,
  whose samples are cached as label layers and transformed every epoch).

The last line reads
``cold=<samples/s> warm=<samples/s> ratio=<warm/cold> bytes_per_sample=<n>``.

    python benchmarks/data_pipeline.py               # from the repository root
    python benchmarks/data_pipeline.py --images 8    # quicker
"""

import argparse
import math
import multiprocessing
import os
import tempfile
import time

import numpy as np

from mrcnn.config import Config
from mrcnn.data import augment
from mrcnn.data.cache import SampleCache
from mrcnn.data.generator import DataGenerator
from mrcnn.data.rle import rle_decode, rle_encode
from mrcnn.dataset import Dataset

HEIGHT, WIDTH = 520, 704
CELL_TYPES = ("astro", "cort", "shsy5y")


class SartoriusConfig(Config):
    """Seed 000's settings that matter for the data pipeline."""

    NAME = "bench"
    NUM_CLASSES = 1 + len(CELL_TYPES)
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "none"
    IMAGE_MIN_DIM = 576
    IMAGE_MAX_DIM = 704
    IMAGE_SHAPE = [576, 704, 3]
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    MASK_SHAPE = [56, 56]
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (112, 112)
    MAX_GT_INSTANCES = 790
    TRAIN_ROIS_PER_IMAGE = 200


class CropConfig(SartoriusConfig):
    """Seed 003's 256x256 random crops."""

    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 256
    IMAGE_SHAPE = [256, 256, 3]


class SartoriusLike(Dataset):
    """PNG images + RLE annotations, decoded on every load."""

    def load_cells(self, rows):
        for i, name in enumerate(CELL_TYPES):
            self.add_class("cell", i + 1, name)
        for image_id, path, cell_type, annotations in rows:
            self.add_image("cell", image_id=image_id, path=path, cell_type=cell_type,
                           annotations=annotations, height=HEIGHT, width=WIDTH)

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        # Decoded into [N, H, W] and returned as an [H, W, N] view, as seed 000 does.
        masks = np.stack([rle_decode(rle, (HEIGHT, WIDTH)) for rle in info["annotations"]])
        masks = np.moveaxis(masks, 0, -1)
        label = CELL_TYPES.index(info["cell_type"]) + 1
        return masks, np.full(masks.shape[-1], label, np.int32)


def make_image(rng, count):
    """A 520x704 uint8 image and the RLE strings of `count` elliptic cells."""
    import skimage.draw

    image = rng.normal(110, 6, (HEIGHT, WIDTH))
    rles = []
    for _ in range(count):
        cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
        r_major, r_minor = rng.uniform(6, 20), rng.uniform(3, 8)
        rr, cc = skimage.draw.ellipse(cy, cx, r_major, r_minor, shape=(HEIGHT, WIDTH),
                                      rotation=rng.uniform(0, math.pi))
        if rr.size == 0:
            continue
        image[rr, cc] += rng.uniform(10, 40)
        mask = np.zeros((HEIGHT, WIDTH), bool)
        mask[rr, cc] = True
        rles.append(rle_encode(mask))
    return np.clip(image, 0, 255).astype(np.uint8), rles


def make_dataset(folder, count, seed=0):
    import skimage.io

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        image, rles = make_image(rng, int(rng.integers(100, 701)))
        path = os.path.join(folder, f"img{i:03d}.png")
        skimage.io.imsave(path, image, check_contrast=False)
        rows.append((f"img{i:03d}", path, CELL_TYPES[i % 3], rles))
    ds = SartoriusLike()
    ds.load_cells(rows)
    ds.prepare()
    return ds


def run_epoch(gen):
    """Samples per second over one pass of `gen` (then advances its epoch)."""
    start = time.perf_counter()
    for i in range(len(gen)):
        gen[i]
    elapsed = time.perf_counter() - start
    gen.on_epoch_end()
    return len(gen) * gen.batch_size / elapsed


def _worker(args):
    """One worker process reading its share of a warm disk cache."""
    dataset, directory, indices, epoch = args
    gen = DataGenerator(dataset, SartoriusConfig(), cache=SampleCache(directory))
    gen.epoch = epoch
    for i in indices:
        gen[i]
    return len(indices)


def two_process_rate(dataset, directory, epochs):
    """Samples/s of two processes sharing a warm disk cache (fork)."""
    n = len(dataset.image_ids)
    jobs = [(dataset, directory, list(range(k, n, 2)), e) for e in range(epochs)
            for k in range(2)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        start = time.perf_counter()
        total = sum(pool.map(_worker, jobs, chunksize=1))
        return total / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="generated images")
    parser.add_argument("--warm-epochs", type=int, default=3, help="epochs timed warm")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        dataset = make_dataset(folder, args.images)
        counts = [len(info["annotations"]) for info in dataset.image_info]
        print(f"{args.images} images 520x704, {min(counts)}-{max(counts)} instances "
              f"(mean {np.mean(counts):.0f}); config: IMAGE_SHAPE 576x704, "
              f"MINI_MASK_SHAPE 112x112, MAX_GT_INSTANCES 790, batch 1")
        cfg = SartoriusConfig()
        rows = []

        cache = SampleCache()
        gen = DataGenerator(dataset, cfg, cache=cache)
        cold = run_epoch(gen)
        after_cold = cache.stats()
        warm = float(np.median([run_epoch(gen) for _ in range(args.warm_epochs)]))
        stats = cache.stats()
        bytes_per_sample = stats.size_bytes / args.images
        rows.append(("cold (memory cache, no augmentation)", cold,
                     f"hit rate {100 * after_cold.hit_rate:.0f}%"))
        rows.append(("warm (memory cache, no augmentation)", warm,
                     f"hit rate {100 * (stats - after_cold).hit_rate:.0f}%"))
        rows.append(("no cache", run_epoch(DataGenerator(dataset, cfg)), ""))

        flips = augment.Compose([augment.Fliplr(), augment.Flipud()])
        flip_cache = SampleCache()
        gen = DataGenerator(dataset, cfg, cache=flip_cache, augmentation=flips)
        for _ in range(10):  # the 4 flip variants' anchor matchings get cached
            run_epoch(gen)
        before = flip_cache.stats()
        flip_warm = float(np.median([run_epoch(gen) for _ in range(args.warm_epochs)]))
        rate = (flip_cache.stats() - before).hit_rate
        rows.append(("warm, random flips (after 10 epochs)", flip_warm,
                     f"hit rate {100 * rate:.0f}%"))

        disk = os.path.join(folder, "cache")
        run_epoch(DataGenerator(dataset, cfg, cache=SampleCache(disk)))
        rows.append(("warm disk cache, 2 processes", two_process_rate(dataset, disk, 2),
                     "one folder shared"))

        crop_cfg = CropConfig()
        crop_cache = SampleCache()
        gen = DataGenerator(dataset, crop_cfg, cache=crop_cache,
                            augmentation=augment.cell_augmentation(crop_size=256))
        crop_cold = run_epoch(gen)
        crop_warm = float(np.median([run_epoch(gen) for _ in range(args.warm_epochs)]))
        rows.append(("crop 256 + cell_augmentation, cold", crop_cold, "label layers"))
        rows.append(("crop 256 + cell_augmentation, warm", crop_warm,
                     f"{crop_cache.stats().size_bytes / args.images / 1e3:.0f} kB/sample"))

        print(f"\n{'case':<44}{'samples/s':>10}  note")
        for name, rate, note in rows:
            print(f"{name:<44}{rate:>10.2f}  {note}")
        print(f"\ncache: {stats.summary()}")
        print(f"cold={cold:.2f} warm={warm:.2f} ratio={warm / cold:.1f} "
              f"bytes_per_sample={bytes_per_sample:.0f}")


if __name__ == "__main__":
    main()
