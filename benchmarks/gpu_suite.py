"""The GPU suite: training throughput, detect latency and peak memory, ours vs torchvision.

    bash benchmarks/gpu_suite.sh                 # on a GPU machine (JAX backend), < 8 min
    python benchmarks/gpu_suite.py --smoke       # CI-size, on CPU, any backend

One table, one row per case. A case runs in its own process (so each peak
memory figure is its own and a dtype policy never leaks into the next case),
with a time limit; cases that do not fit the overall budget are listed as
skipped. Cases, in order of importance:

- ``b0``: EfficientNetV2-B0 (FC 128) at 576x704, seed 000's Sartorius config
  (resize mode "none", 200 ROIs per image, 56x56 masks): training images/s at
  batch `--batch`, in float32 and bfloat16, and what that implies for one
  606-image Sartorius epoch (seed 000: ~3 min on a P100; target <= 6 s on one
  H100, i.e. >= 100 images/s).
- ``r50``: ResNet50-FPN at 1024x1024: training megapixels/s, float32 and bfloat16.
- ``detect``: `detect()` latency, one image, including molding and
  full-resolution masks.
- ``peer``: torchvision's maskrcnn_resnet50_fpn (when torch + torchvision import)
  at the same sizes and batch, float32 and its own bf16 autocast.
- the same cases under another switch (``CASE_ENV``): ``b0-bf16-allrows``
  trains the mask head on every ROI row instead of the smallest bucket that
  holds the positives (``MRCNN_TRAIN_MASK_BUCKETS=off``); ``*-noautotune``
  turn XLA's convolution autotuning off, to tell its scratch memory from the
  steady state's peak.

A training step is one optimizer step on one prepared batch: the data
pipeline is measured by benchmarks/data_pipeline.py. Random weights;
medians over `--steps` timed steps after a warm-up (compilation reported
separately). Peak memory: the device's peak bytes in use (JAX memory_stats,
TF get_memory_info, torch max_memory_allocated) or, on a CPU, the process's
peak RSS.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SARTORIUS_EPOCH = 606
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# name: (what, backbone, height, width, batch, precision)
FULL = {
    "b0-bf16": ("train", "efficientnetv2-b0", 576, 704, 8, "bfloat16"),
    "b0-f32": ("train", "efficientnetv2-b0", 576, 704, 8, None),
    "detect-b0-bf16": ("detect", "efficientnetv2-b0", 576, 704, 1, "bfloat16"),
    "r50-bf16": ("train", "resnet50", 1024, 1024, 2, "bfloat16"),
    "r50-f32": ("train", "resnet50", 1024, 1024, 2, None),
    "detect-r50-f32": ("detect", "resnet50", 1024, 1024, 1, None),
    "peer-r50-f32": ("peer", "resnet50", 1024, 1024, 2, None),
    "peer-r50-bf16": ("peer", "resnet50", 1024, 1024, 2, "bfloat16"),
    # The same cases under other switches (CASE_ENV): the mask head on every
    # training row instead of the bucket, and XLA without convolution
    # autotuning (to tell its scratch memory from the steady state's).
    "b0-bf16-allrows": ("train", "efficientnetv2-b0", 576, 704, 8, "bfloat16"),
    "r50-f32-noautotune": ("train", "resnet50", 1024, 1024, 2, None),
    "detect-r50-f32-noautotune": ("detect", "resnet50", 1024, 1024, 1, None),
}
NO_AUTOTUNE = {"XLA_FLAGS": "--xla_gpu_autotune_level=0"}
CASE_ENV = {
    "b0-bf16-allrows": {"MRCNN_TRAIN_MASK_BUCKETS": "off"},
    "r50-f32-noautotune": NO_AUTOTUNE,
    "detect-r50-f32-noautotune": NO_AUTOTUNE,
}
SMOKE_SIZE = (128, 192)


def cases(smoke, batch):
    out = {}
    for name, (what, backbone, h, w, b, precision) in FULL.items():
        if smoke:
            h, w = SMOKE_SIZE
            b = 1 if what == "detect" else 2
        elif batch and what != "detect":
            b = batch
        out[name] = (what, backbone, h, w, b, precision)
    return out


# ---------------------------------------------------------------- one case

def suite_config(backbone, height, width, batch, precision, smoke):
    from mrcnn.config import Config

    class SuiteConfig(Config):
        NAME = "gpu_suite"
        NUM_CLASSES = 4
        IMAGES_PER_GPU = batch
        BACKBONE = backbone
        IMAGE_RESIZE_MODE = "none"
        IMAGE_MIN_DIM = min(height, width)
        IMAGE_MAX_DIM = max(height, width)
        IMAGE_SHAPE = [height, width, 3]
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128) if smoke else (32, 64, 128, 256, 512)
        MASK_SHAPE = [56, 56]
        MINI_MASK_SHAPE = (56, 56)
        MAX_GT_INSTANCES = 100
        TRAIN_ROIS_PER_IMAGE = 200
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0
        FPN_CLASSIF_FC_LAYERS_SIZE = 128 if backbone.startswith("efficientnet") else 1024
        MIXED_PRECISION = precision
        TRAIN_BN = False
    return SuiteConfig()


def make_dataset(height, width, count, instances):
    from mrcnn.dataset import Dataset

    class Rectangles(Dataset):
        def load_image(self, image_id):
            rng = np.random.default_rng(image_id)
            return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)

        def load_mask(self, image_id):
            rng = np.random.default_rng(1000 + image_id)
            m = np.zeros((height, width, instances), bool)
            for k in range(instances):
                h, w = rng.integers(8, min(height, width) // 6, 2)
                y, x = rng.integers(0, height - h), rng.integers(0, width - w)
                m[y:y + h, x:x + w, k] = True
            return m, rng.integers(1, 4, instances).astype(np.int32)

    ds = Rectangles()
    for c in range(1, 4):
        ds.add_class("suite", c, f"class{c}")
    for i in range(count):
        ds.add_image("suite", image_id=i, path=None)
    ds.prepare()
    return ds


def device_peak_bytes():
    """Peak bytes on the first accelerator, or the process's peak RSS on a CPU; and which."""
    import keras
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax
            dev = jax.local_devices()[0]
            if dev.platform != "cpu":
                return int(dev.memory_stats()["peak_bytes_in_use"]), dev.device_kind
        elif backend == "tensorflow":
            import tensorflow as tf
            if tf.config.list_physical_devices("GPU"):
                return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]), "GPU:0"
        elif backend == "torch":
            import torch
            if torch.cuda.is_available():
                return int(torch.cuda.max_memory_allocated()), torch.cuda.get_device_name()
    except (KeyError, RuntimeError, AttributeError) as err:
        print(f"no device memory figure: {err}", file=sys.stderr)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu (peak RSS)"


def run_ours(what, backbone, height, width, batch, precision, steps, smoke):
    import keras
    import mrcnn.model as modellib
    from mrcnn.data.generator import DataGenerator

    keras.utils.set_random_seed(0)      # the same random weights every run (a smoke's detections)
    config = suite_config(backbone, height, width, batch, precision, smoke)
    data = make_dataset(height, width, max(batch, 2), 10 if smoke else 60)
    model_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "mrcnn_gpu_suite")
    out = {"backend": keras.backend.backend()}
    if what == "train":
        model = modellib.MaskRCNN("training", config, model_dir)
        model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM, 1000)
        batch_data = DataGenerator(data, config, seed=0)[0]
        t0 = time.perf_counter()
        model.keras_model.train_on_batch(batch_data)
        out["compile_s"] = time.perf_counter() - t0
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            logs = model.keras_model.train_on_batch(batch_data, return_dict=True)
            times.append(time.perf_counter() - t)
        step = statistics.median(times)
        from mrcnn.ops.dispatch import switch_trains_fast
        out["train_mask_buckets"] = switch_trains_fast()
        out.update(step_s=step, images_per_s=batch / step,
                   mpx_per_s=batch * height * width / 1e6 / step,
                   loss=float(logs["loss"]), params=model.keras_model.count_params())
    else:
        model = modellib.MaskRCNN("inference", config, model_dir)
        image = data.load_image(0)
        t0 = time.perf_counter()
        model.detect([image])
        out["compile_s"] = time.perf_counter() - t0
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            r = model.detect([image])[0]
            times.append(time.perf_counter() - t)
        out.update(detect_s=statistics.median(times), detections=int(r["rois"].shape[0]))
    out["peak_bytes"], out["device"] = device_peak_bytes()
    return out


def run_peer(height, width, batch, precision, steps):
    """torchvision's Mask R-CNN on the same sizes; bf16 through torch.autocast."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=4,
        min_size=min(height, width), max_size=max(height, width),
        rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000,
        box_batch_size_per_image=200, box_detections_per_img=100,
        box_score_thresh=0.0).to(dev)
    images = [torch.rand(3, height, width, device=dev) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        boxes, masks = [], []
        for _ in range(60):
            h, w = rng.integers(8, min(height, width) // 6, 2)
            y, x = rng.integers(0, height - h), rng.integers(0, width - w)
            m = np.zeros((height, width), np.uint8)
            m[y:y + h, x:x + w] = 1
            boxes.append([x, y, x + w, y + h])
            masks.append(m)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32, device=dev),
                        "labels": torch.tensor(rng.integers(1, 4, 60), device=dev),
                        "masks": torch.tensor(np.stack(masks), device=dev)})
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    times = []
    for i in range(steps + 1):
        sync()
        t = time.perf_counter()
        with autocast:
            loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        if i:
            times.append(time.perf_counter() - t)
    model.eval()
    dtimes = []
    with torch.no_grad(), autocast:
        for i in range(steps + 1):
            sync()
            t = time.perf_counter()
            model(images[:1])
            sync()
            if i:
                dtimes.append(time.perf_counter() - t)
    step = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"backend": f"torch {torch.__version__}", "step_s": step,
            "images_per_s": batch / step, "mpx_per_s": batch * height * width / 1e6 / step,
            "detect_s": statistics.median(dtimes), "peak_bytes": int(peak),
            "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (peak RSS)"}


def run_case(spec, steps, smoke):
    what, backbone, h, w, batch, precision = spec
    if what == "peer":
        try:
            import torchvision  # noqa: F401  (the peer is optional)
        except ImportError as err:
            return {"error": f"skipped: the peer needs torch + torchvision ({err})"}
        return run_peer(h, w, batch, precision, steps)
    return run_ours(what, backbone, h, w, batch, precision, steps, smoke)


def case_env(name):
    """The environment a case runs in: ours, plus its CASE_ENV switches (XLA_FLAGS appended)."""
    env = dict(os.environ)
    for key, value in CASE_ENV.get(name, {}).items():
        env[key] = f"{env[key]} {value}" if key == "XLA_FLAGS" and env.get(key) else value
    return env


# ---------------------------------------------------------------- the table

def fmt(value, spec="{:.2f}"):
    return "-" if value is None else spec.format(value)


def table(rows, all_cases):
    head = (f"{'case':26}{'backend':>14}{'batch':>6}{'size':>10}{'precision':>10}"
            f"{'step s':>8}{'img/s':>8}{'Mpx/s':>8}{'606-img epoch s':>16}"
            f"{'detect s':>9}{'peak GiB':>9}{'compile s':>10}")
    lines = [head, "-" * len(head)]
    for name, res in rows.items():
        what, backbone, h, w, batch, precision = all_cases[name]
        if "error" in res:
            lines.append(f"{name:26}  {res['error']}")
            continue
        ips = res.get("images_per_s")
        lines.append(
            f"{name:26}{res['backend'][:13]:>14}{batch:>6}{f'{h}x{w}':>10}"
            f"{precision or 'float32':>10}{fmt(res.get('step_s'), '{:.3f}'):>8}"
            f"{fmt(ips, '{:.1f}'):>8}{fmt(res.get('mpx_per_s'), '{:.1f}'):>8}"
            f"{fmt(SARTORIUS_EPOCH / ips if ips else None, '{:.1f}'):>16}"
            f"{fmt(res.get('detect_s'), '{:.3f}'):>9}"
            f"{fmt(res['peak_bytes'] / 2 ** 30 if res.get('peak_bytes') else None):>9}"
            f"{fmt(res.get('compile_s'), '{:.0f}'):>10}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help=f"CI size: {SMOKE_SIZE[0]}x{SMOKE_SIZE[1]}, batch 2, 1 step")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated subset of {', '.join(FULL)} (default all)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5; smoke 1)")
    p.add_argument("--batch", type=int, default=None, help="training batch for every case")
    p.add_argument("--budget-s", type=float, default=450,
                   help="stop starting cases after this many seconds")
    p.add_argument("--case-timeout-s", type=float, default=240)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    steps = args.steps or (1 if args.smoke else 5)
    all_cases = cases(args.smoke, args.batch)
    if args.one:
        print("RESULT " + json.dumps(run_case(all_cases[args.one], steps, args.smoke)))
        return
    names = args.cases.split(",") if args.cases else list(all_cases)
    unknown = [n for n in names if n not in all_cases]
    if unknown:
        p.error(f"unknown case(s) {unknown}; expected some of {list(all_cases)}")
    start, rows = time.perf_counter(), {}
    for name in names:
        left = args.budget_s - (time.perf_counter() - start)
        if left < 20:
            rows[name] = {"error": "skipped: over the --budget-s"}
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--one", name, "--steps", str(steps)]
        cmd += ["--smoke"] if args.smoke else []
        cmd += ["--batch", str(args.batch)] if args.batch else []
        env = case_env(name)
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                                  timeout=min(args.case_timeout_s, left))
        except subprocess.TimeoutExpired:
            rows[name] = {"error": f"timed out after {time.perf_counter() - t:.0f} s"}
            print(f"{name}: timed out", flush=True)
            continue
        found = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not found:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            rows[name] = {"error": f"failed (rc {proc.returncode}): {' | '.join(tail)[-300:]}"}
        else:
            rows[name] = json.loads(found[-1][len("RESULT "):])
            rows[name].setdefault("wall_s", time.perf_counter() - t)
        print(f"{name}: {time.perf_counter() - t:.0f} s  {json.dumps(rows[name])[:400]}",
              flush=True)
    print()
    print(table(rows, all_cases))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": {n: all_cases[n] for n in rows}, "results": rows}, f, indent=1)
    if all("error" in r for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
