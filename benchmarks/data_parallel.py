"""Seconds per training step on one device and data-parallel on two, at the same global batch.

    python benchmarks/data_parallel.py                        # TensorFlow and JAX, 2 devices
    python benchmarks/data_parallel.py --backends jax --steps 10

Each case runs in its own process: one device (DISTRIBUTION="none") takes the
global batch of GPU_COUNT x IMAGES_PER_GPU images; two devices (the engine
of `mrcnn.distribute`: TensorFlow MirroredStrategy, JAX DataParallel) take
the same batch, half on each. Without GPUs the two devices are virtual CPU
devices sharing the same cores (`mrcnn.distribute.use_devices`), so the table
measures the engines' overhead, not a speed-up. Median seconds between the
ends of consecutive steps (data included; the sample cache holds the
images after the first epoch), after --warmup steps (compilation
excluded). The small CNN backbone, shapes of 256x256, SGD.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = (("none", 1), ("auto", 2))       # (DISTRIBUTION, devices in the process)


def worker(backend, distribution, devices, steps, warmup, size, images_per_gpu):
    os.environ["KERAS_BACKEND"] = backend
    sys.path.insert(0, ROOT)
    from mrcnn.distribute import use_devices

    use_devices(devices, verbose=False)

    import keras

    import mrcnn.model as modellib
    from mrcnn.config import Config
    from mrcnn.datasets.shapes import ShapesDataset

    class BenchConfig(Config):
        NAME = "dp_bench"
        NUM_CLASSES = 1 + 3
        GPU_COUNT = 2
        IMAGES_PER_GPU = images_per_gpu
        DISTRIBUTION = distribution
        BACKBONE = "small-cnn"
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = size
        RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
        TRAIN_ROIS_PER_IMAGE = 64
        POST_NMS_ROIS_TRAINING = 500
        MAX_GT_INSTANCES = 8
        TOP_DOWN_PYRAMID_SIZE = 64
        FPN_CLASSIF_FC_LAYERS_SIZE = 128
        MASK_HEAD_CHANNELS = 64
        STEPS_PER_EPOCH = warmup + steps
        VALIDATION_STEPS = 0
        CACHE = True

    data = ShapesDataset()
    data.load_shapes(16, size, size, seed=0, max_shapes=4)
    data.prepare()
    config = BenchConfig()
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, tempfile.mkdtemp(prefix="dp_bench_"))
    ends = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    model.train(data, None, config.LEARNING_RATE, epochs=1, layers="all", verbose=0,
                custom_callbacks=[Clock()])
    times = [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])]
    print("RESULT " + json.dumps({
        "backend": backend, "devices": model.plan.replicas, "engine": model.plan.engine,
        "describe": model.plan.describe(), "images_per_step": config.BATCH_SIZE,
        "median_s": statistics.median(times), "min_s": min(times), "steps": len(times)}))


def run_case(backend, distribution, devices, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, os.path.abspath(__file__), "--worker", backend, distribution,
               str(devices), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--size", str(args.size), "--images-per-gpu", str(args.images_per_gpu)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{backend} {distribution}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    p.add_argument("--steps", type=int, default=6, help="measured steps (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="steps not measured (default 2)")
    p.add_argument("--size", type=int, default=256, help="image side (default 256)")
    p.add_argument("--images-per-gpu", type=int, default=1,
                   help="images per device; the global batch is twice that (default 1)")
    p.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        backend, distribution, devices = args.worker
        return worker(backend, distribution, int(devices), args.steps, args.warmup, args.size,
                      args.images_per_gpu)
    print(f"{'backend':11} {'devices':>7} {'engine':18} {'images/step':>11} {'s/step':>7} "
          f"{'min':>6} {'vs 1':>5}")
    for backend in args.backends:
        base = None
        for distribution, devices in CASES:
            r = run_case(backend, distribution, devices, args)
            base = base or r["median_s"]
            print(f"{backend:11} {r['devices']:>7} {str(r['engine']):18} "
                  f"{r['images_per_step']:>11} {r['median_s']:>7.3f} {r['min_s']:>6.3f} "
                  f"{r['median_s'] / base:>5.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
