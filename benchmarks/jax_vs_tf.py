"""Is JAX slower than TensorFlow on this CPU because of XLA, or because of our graph?

    python benchmarks/jax_vs_tf.py                       # 512x512, batch 1, 3 steps
    python benchmarks/jax_vs_tf.py --xla-flags "--xla_cpu_use_thunk_runtime=false"
    python benchmarks/jax_vs_tf.py --cases plain,mrcnn,mrcnn-padded

Times one training step (median of --steps after a warm-up step; compilation
shown apart) of
- plain: ``keras.applications.ResNet50`` (random weights, a 10-class softmax
  head, SGD) on a --size image: convolutions and their gradients only;
- mrcnn: our ResNet50-FPN Mask R-CNN training step
  (benchmarks/train_detect.py's, float32);
- mrcnn-padded: the same with the mask head on all 128 padded positive rows
  on both backends (train_detect.py --padded-mask-head): JAX needs static
  shapes, so there it always runs so, while TensorFlow runs it on the ~10
  real positives. This is the same graph on both backends;
each on the TensorFlow and the JAX backend, every case in a fresh process.
If the JAX/TF ratio of the plain network is about the ratio of ours, the
difference is XLA:CPU's (its convolution kernels), not ours; --xla-flags is
passed to the JAX processes as XLA_FLAGS to try XLA's CPU options.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def plain_step(size, steps):
    import keras
    import numpy as np

    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=10)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                  loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, size, size, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[[3]]
    t = time.perf_counter()
    model.train_on_batch(x, y)
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return {"step_s": statistics.median(times), "compile_s": compile_s}


def run_case(case, backend, args):
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax" and args.xla_flags:
        env["XLA_FLAGS"] = args.xla_flags
    if case == "plain":
        cmd = [sys.executable, os.path.abspath(__file__), "--case", "plain",
               "--size", str(args.size), "--steps", str(args.steps)]
    else:
        cmd = [sys.executable, os.path.join(HERE, "train_detect.py"), "--phase", "train",
               "--size", str(args.size), "--steps", str(args.steps), "--precision", "float32"]
        if case == "mrcnn-padded":
            cmd.append("--padded-mask-head")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{case} on {backend} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    return {"step_s": result.get("step_s", result.get("train_step_s")),
            "compile_s": result["compile_s"]}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--xla-flags", default=None, help="XLA_FLAGS for the JAX processes")
    p.add_argument("--cases", default="plain,mrcnn,mrcnn-padded",
                   help="comma-separated: plain, mrcnn, mrcnn-padded")
    p.add_argument("--case", choices=("plain",), default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case == "plain":
        print(json.dumps(plain_step(args.size, args.steps)))
        return
    rows = {}
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - {"plain", "mrcnn", "mrcnn-padded"})
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; expected plain, mrcnn, mrcnn-padded")
    for case in cases:
        for backend in ("tensorflow", "jax"):
            rows[case, backend] = run_case(case, backend, args)
            print(f"{case:13}{backend:12}{rows[case, backend]['step_s']:9.3f} s/step "
                  f"(first step {rows[case, backend]['compile_s']:.1f} s)", flush=True)
    print(f"\nsize={args.size} batch=1 float32, XLA_FLAGS for JAX: {args.xla_flags or '(none)'}")
    print(f"{'case':13}{'TF s/step':>11}{'JAX s/step':>12}{'JAX/TF':>8}"
          f"{'TF first s':>12}{'JAX first s':>13}")
    for case in cases:
        tf_, jx = rows[case, "tensorflow"], rows[case, "jax"]
        print(f"{case:13}{tf_['step_s']:11.3f}{jx['step_s']:12.3f}"
              f"{jx['step_s'] / tf_['step_s']:8.2f}{tf_['compile_s']:12.1f}{jx['compile_s']:13.1f}")


if __name__ == "__main__":
    main()
