"""Train a tiny model on one device and data-parallel on two; write the weight differences as JSON.

    python tests/distribute/dp_equivalence.py BACKEND OUT.json TRAIN_BN...

TRAIN_BN: 0 and/or 1 (the keys of the JSON). Run in its own process: the
two devices are virtual CPU devices, set up before the backend starts
(`mrcnn.distribute.use_devices`). Both runs take the same global batches
(GPU_COUNT=2 x IMAGES_PER_GPU=1) from the same initial weights:
DISTRIBUTION="none" (one device, batches of 2) and "auto" (data-parallel:
JAX DataParallel / TensorFlow MirroredStrategy). The gradient clip norm is
small enough to act, so clipping must happen after the replicas' sum.

On TensorFlow each replica draws the random numbers of its ROI sampling for
its own images, which are not those one device draws for the whole batch;
so there the sampler's draws are replaced by a fixed order (the candidates
in their order: proposals by score, then the ground-truth boxes) and each
image gets the same ROIs in both runs. JAX shards one program and draws the
same numbers, so it keeps the random sampling.
"""

import json
import os
import sys
import tempfile
import time

BACKEND, OUT, MODES = sys.argv[1], sys.argv[2], sys.argv[3:]
os.environ["KERAS_BACKEND"] = BACKEND
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), os.path.dirname(HERE)]

from mrcnn.distribute import use_devices  # noqa: E402

DEVICES = use_devices(2, verbose=False)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import backbones  # noqa: E402
import mrcnn.model as modellib  # noqa: E402
from model_helpers import first_step_recorder, make_config, shapes  # noqa: E402

STEPS = 3
CLIP = 0.1      # below the gradients' norms: clipping acts
# validation losses go through the replicas' loss shares on TensorFlow; JAX runs one program
VALIDATION_STEPS = 1 if BACKEND == "tensorflow" else 0


@backbones.register("dp-tiny", strides=(4, 8, 16, 32), channels=(8, 8, 16, 16),
                    layer_groups={"all": r"dpt_.*", "3+": r"dpt_s[345].*",
                                  "4+": r"dpt_s[45].*", "5+": r"dpt_s5.*"})
def dp_tiny(inputs, *, first_stride=2, **options):
    """Four convolutions and a batch norm (the heads have six more): it compiles quickly."""
    from keras import layers
    x = layers.Rescaling(1 / 128.0, name="dpt_rescale")(inputs)
    x = layers.Conv2D(8, 3, strides=2 * first_stride, padding="same", use_bias=False,
                      name="dpt_s2_conv")(x)
    x = layers.BatchNormalization(name="dpt_s2_bn")(x)
    outputs = [layers.Activation("relu", name="dpt_s2_relu")(x)]
    for stage, width in zip((3, 4, 5), (8, 16, 16)):
        outputs.append(layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                                     name=f"dpt_s{stage}_conv")(outputs[-1]))
    return outputs


def train(distribution, initial, model_dir, train_bn):
    config = make_config(BACKBONE="dp-tiny", GPU_COUNT=2, IMAGES_PER_GPU=1,
                         DISTRIBUTION=distribution, TRAIN_BN=train_bn, STEPS_PER_EPOCH=STEPS,
                         GRADIENT_CLIP_NORM=CLIP, VALIDATION_STEPS=VALIDATION_STEPS)
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, model_dir)
    if initial is not None:
        model.keras_model.set_weights(initial)
    before = model.keras_model.get_weights()
    first = first_step_recorder()
    start = time.time()
    # the data-parallel run also scores the validation set at the end of the epoch: the
    # callback builds an inference model, which must run on one device
    history = model.train(shapes(6, seed=1), shapes(2, seed=2), config.LEARNING_RATE,
                          epochs=1, layers="all", verbose=0,
                          evaluation=distribution != "none", custom_callbacks=[first])
    return {"before": before, "first": first.weights, "after": model.keras_model.get_weights(),
            "names": [w.path for w in model.keras_model.weights],
            "history": {k: float(v[-1]) for k, v in history.history.items()},
            "first_logs": first.logs, "plan": model.plan, "seconds": time.time() - start}


def per_weight(a, b):
    return [float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b)]


def max_abs(a, b):
    return max(per_weight(a, b))


def compare(train_bn, model_dir):
    one = train("none", None, os.path.join(model_dir, "one"), train_bn)
    two = train("auto", one["before"], os.path.join(model_dir, "two"), train_bn)
    names = one["names"]
    after, first = per_weight(one["after"], two["after"]), per_weight(one["first"], two["first"])
    moved = per_weight(one["before"], one["after"])
    return {
        "plan": [one["plan"].describe(), two["plan"].describe()],
        "engine": two["plan"].engine, "replicas": two["plan"].replicas,
        "graph_batch_size": two["plan"].graph_batch_size,
        "same_names": names == two["names"],
        "same_start": max_abs(one["before"], two["before"]),
        "first_step_diff": max(first), "first_step_worst": names[int(np.argmax(first))],
        "first_step_moved": max_abs(one["before"], one["first"]),
        "max_diff": max(after), "worst_weight": names[int(np.argmax(after))],
        "max_moved": max(moved),
        "moving_stats_moved": max((d for n, d in zip(names, moved) if "moving" in n),
                                  default=0.0),
        "history": [one["history"], two["history"]],
        "first_logs": [one["first_logs"], two["first_logs"]],
        "seconds": [one["seconds"], two["seconds"]],
    }


def main():
    if BACKEND == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
        from model_helpers import fixed_roi_sampling

        fixed_roi_sampling()
    result = {"devices": DEVICES}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            result[mode] = compare(mode == "1", os.path.join(tmp, mode))
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
