"""One process of a data-parallel job (or a single-process reference): train a tiny model, dump it.

    python -m mrcnn.launch --processes 2 tests/distribute/multiprocess_job.py OUT MODEL_DIR
    python tests/distribute/multiprocess_job.py OUT MODEL_DIR --single      # the reference

``{process}`` in MODEL_DIR is replaced by the process id: each process of a
test job gets its own model folder, so a test sees whether a process that is
not the chief wrote anything (its folder must stay empty); the run folders'
names must agree all the same.

Every process trains the same tiny model (GPU_COUNT=2 x IMAGES_PER_GPU=1
over the job's two processes; the reference: one device, GPU_COUNT=1 x
IMAGES_PER_GPU=2, the same global batches) for STEPS steps with a shared
disk cache, then writes, OUTSIDE the run folder:

* ``OUT/weights_<process>.npz``: its final weights (``w0000``, ... in model order);
* ``OUT/first_<process>.npz``: its weights after the first step (the same keys);
* ``OUT/report_<process>.json``: its run folder, the files it saw there, the
  last epoch's logs and the first step's, its cluster role.

``--initial FILE`` starts from those weights (the reference writes its
initial weights to ``OUT/initial.npz``), so the job and the reference start
alike. ``--fixed-rois`` replaces the random ROI sampling by a fixed order
(TensorFlow: each replica would draw its own numbers, see
tests/distribute/dp_equivalence.py). ``--evaluate`` scores the validation
set every epoch (EpochScore, only on the chief) and keeps the best.
"""

import argparse
import json
import os
import sys
import time

STARTED = time.time()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), os.path.dirname(HERE)]

from mrcnn.distribute import cluster  # noqa: E402

cluster.initialize()                  # before the backend runs anything (no-op when single)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import backbones  # noqa: E402
import mrcnn.model as modellib  # noqa: E402
from model_helpers import first_step_recorder, make_config, shapes  # noqa: E402

STEPS = 3


@backbones.register("mp-tiny", strides=(4, 8, 16, 32), channels=(8, 8, 16, 16),
                    layer_groups={"all": r"mpt_.*", "3+": r"mpt_s[345].*",
                                  "4+": r"mpt_s[45].*", "5+": r"mpt_s5.*"})
def mp_tiny(inputs, *, first_stride=2, **options):
    """Four convolutions: the graph compiles in seconds."""
    from keras import layers
    x = layers.Rescaling(1 / 128.0, name="mpt_rescale")(inputs)
    outputs = [layers.Conv2D(8, 3, strides=2 * first_stride, padding="same", activation="relu",
                             name="mpt_s2_conv")(x)]
    for stage, width in zip((3, 4, 5), (8, 16, 16)):
        outputs.append(layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                                     name=f"mpt_s{stage}_conv")(outputs[-1]))
    return outputs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("model_dir")
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--initial")
    parser.add_argument("--fixed-rois", action="store_true")
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    if args.fixed_rois:
        from model_helpers import fixed_roi_sampling

        fixed_roi_sampling()
    index = cluster.process_index()
    os.makedirs(args.out, exist_ok=True)
    devices = (1, 2) if args.single else (2, 1)
    config = make_config(BACKBONE="mp-tiny", GPU_COUNT=devices[0], IMAGES_PER_GPU=devices[1],
                         STEPS_PER_EPOCH=STEPS, VALIDATION_STEPS=1, CACHE="disk",
                         CACHE_DIR=os.path.join(args.out, "cache"))
    keras.utils.set_random_seed(0)
    ready = time.time()
    model = modellib.MaskRCNN("training", config, args.model_dir.format(process=index))
    if args.initial:
        with np.load(args.initial) as saved:
            model.keras_model.set_weights([saved[k] for k in sorted(saved.files)])
    if args.single:
        np.savez(os.path.join(args.out, "initial.npz"),
                 **{f"w{i:04d}": w for i, w in enumerate(model.keras_model.get_weights())})
    evaluation = None
    if args.evaluate:
        from mrcnn.evaluation.epoch_score import EpochScore
        evaluation = EpochScore(shapes(2, seed=3), verbose=1)
    first = first_step_recorder()
    history = model.train(shapes(8, seed=1), shapes(2, seed=2), config.LEARNING_RATE,
                          epochs=args.epochs, layers="all", verbose=0, evaluation=evaluation,
                          keep="best" if args.evaluate else "all", custom_callbacks=[first])
    trained = time.time()
    weights = model.keras_model.get_weights()
    for name, values in (("weights", weights), ("first", first.weights)):
        np.savez(os.path.join(args.out, f"{name}_{index}.npz"),
                 **{f"w{i:04d}": w for i, w in enumerate(values)})
    report = {
        "process": index, "processes": cluster.process_count(), "chief": cluster.is_chief(),
        "log_dir": model.log_dir, "epoch": model.epoch,
        "files": sorted(os.listdir(model.log_dir)) if os.path.isdir(model.log_dir) else None,
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "first_logs": first.logs,
        "plan": model.plan.describe(),
        "seconds": {"start": ready - STARTED, "build_and_train": trained - ready},
    }
    with open(os.path.join(args.out, f"report_{index}.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"process {index}: trained to epoch {model.epoch} in {model.log_dir}")


if __name__ == "__main__":
    main()
