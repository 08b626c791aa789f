"""Short training run on the backend named by KERAS_BACKEND; prints JSON losses.

Run by tests/test_backends.py in a subprocess per backend:
    KERAS_BACKEND=torch python tests/backend_smoke.py OUT_DIR
"""

import importlib.util
import json
import os
import sys

# Run as a script, this folder would come first on sys.path and its test
# folders (tests/backbones/) would shadow the real packages: use the repo root.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))
_spec = importlib.util.spec_from_file_location("model_helpers", os.path.join(HERE, "model_helpers.py"))
model_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(model_helpers)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
make_config, shapes = model_helpers.make_config, model_helpers.shapes


def main(out_dir):
    keras.utils.set_random_seed(0)
    config = make_config(STEPS_PER_EPOCH=6, VALIDATION_STEPS=1, LEARNING_RATE=0.02,
                         TRAIN_BN=True)
    data = shapes(2, seed=5)  # the same two images every step: the loss must fall
    model = modellib.MaskRCNN("training", config, out_dir)
    history = model.train(data, data, config.LEARNING_RATE, epochs=3, layers="all",
                          verbose=0)
    infer = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=2), out_dir)
    infer.load_weights(model.find_last())
    results = infer.detect([data.load_image(0), data.load_image(1)])
    print("RESULT " + json.dumps({
        "backend": keras.backend.backend(),
        "loss": history.history["loss"],
        "detections": [int(r["rois"].shape[0]) for r in results],
        "mask_shapes": [list(r["masks"].shape) for r in results],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
