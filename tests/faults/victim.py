"""The training process the fault tests kill: trains the tiny model to epoch N, resuming.

Run from the repository root (tests/faults/test_kill_and_resume.py does)::

    MRCNN_FAULT=checkpoint:2:partial python tests/faults/victim.py MODEL_DIR --epochs 4 --seed 0

It resumes as a user does: when `MODEL_DIR` holds a checkpoint of this
config, ``model.load_weights("last")`` then ``model.train(..., epochs=N)``
continues the epoch count; with none it starts fresh. Training uses the disk
sample cache (``CACHE="disk"``, under ``MODEL_DIR/cache``), validation, and
fixed seeds. ``$MRCNN_FAULT`` (see `tests/faults/injection.py`) makes the
process SIGKILL itself at one write point or training step; without it the
run goes to the end (or is killed from outside).

Lines on stdout the parent reads: ``VICTIM fresh``, ``VICTIM resumed
<path> epoch <e>``, ``VICTIM train <epoch>`` (training starts), ``VICTIM done
<epoch>``, ``VICTIM counts {json}`` (writes of each kind this process made),
and ``FAULT {json}`` just before a planned kill.
"""

import argparse
import json
import os
import sys

# Run as a script, this folder would come first on sys.path; use the repository root
# (as tests/backend_smoke.py does), so `tests.faults` and `mrcnn` import from the checkout.
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, ROOT)

from tests.faults import injection, training_setup  # noqa: E402


def say(*parts):
    print("VICTIM", *parts, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--epochs", type=int, default=training_setup.EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model_dir = os.path.abspath(args.model_dir)
    config = training_setup.victim_config(model_dir)

    injector = injection.Injector(os.environ.get("MRCNN_FAULT") or None,
                                  cache_dir=config.CACHE_DIR).install()
    import keras

    import mrcnn.model as modellib
    from mrcnn.training import runs

    keras.utils.set_random_seed(args.seed)
    train, val = training_setup.victim_data(args.seed)
    model = modellib.MaskRCNN("training", config, model_dir)
    if runs.list_checkpoints(model_dir, config.NAME):
        report = model.load_weights("last")
        say("resumed", report["path"], "epoch", model.epoch)
    else:
        say("fresh")
    if model.epoch < args.epochs:
        say("train", model.epoch)
        model.train(train, val, config.LEARNING_RATE, epochs=args.epochs, layers="all",
                    custom_callbacks=[injector.callback()], verbose=0, seed=args.seed)
    say("counts", json.dumps(injector.counts))
    say("done", model.epoch)


if __name__ == "__main__":
    main()
