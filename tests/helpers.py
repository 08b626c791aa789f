"""Shared checks for every Keras layer of the library: :func:`run_layer_test`.

One call checks what each layer promises to Keras (output shapes and
dtypes, the ``get_config`` round trip by value, saving inside a ``.keras``
model) on the backend the tests run on (TensorFlow, JAX or PyTorch)::

    from helpers import run_layer_test

    run_layer_test(FixedBatch(2), np.zeros((2, 3), "float32"),
                   expected_output_shape=(2, 3))

Every failed check raises ``AssertionError`` naming the layer and the check.
"""

import inspect
import os
import tempfile

import keras
import numpy as np
from keras import ops

_BASE_LAYER = keras.layers.Layer


def normalize_config(value):
    """A config as plain Python values, for comparison by value.

    Tuples become lists, NumPy arrays nested lists and NumPy scalars Python
    scalars, recursively through dicts and lists. Equal values then compare
    equal (``(7, 7) == [7, 7]``); any changed value still differs.
    """
    if isinstance(value, dict):
        return {key: normalize_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize_config(item) for item in value]
    if isinstance(value, np.ndarray):
        return normalize_config(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_layer_test(layer, inputs, *, expected_output_shape=None,
                   expected_output_dtype=None, custom_objects=None,
                   rtol=1e-5, atol=1e-6, config_exclude=(), run_saving=True):
    """Checks one Keras 3 layer on concrete inputs; returns its eager outputs.

    Checks, in order:

    1. Eager call: the output shape(s) equal ``layer.compute_output_shape``
       of the input shape(s) (the layer must implement it) and
       ``expected_output_shape`` when given; the shapes of a symbolic call
       on ``keras.KerasTensor`` inputs equal them too. Where the layer
       defines ``compute_output_spec``, its shapes AND dtypes equal the
       eager outputs'. ``expected_output_dtype`` (a dtype name, or a list
       per output) is checked when given.
    2. Config: every named constructor argument (except ``config_exclude``)
       is a key of ``get_config()``; ``type(layer).from_config(config)``
       gives a layer whose ``get_config()`` equals the original's by value
       (see :func:`normalize_config`), and whose eager outputs equal the
       original's (the original's weights are copied over first).
    3. Saving (when ``run_saving``): a re-created layer inside a functional
       ``keras.Model`` (static batch size and input dtypes from ``inputs``)
       gives the eager outputs through ``predict_on_batch`` (compiled:
       ``tf.function`` / ``jax.jit``), and so does that model after
       ``model.save(tmp / "m.keras")`` and ``keras.saving.load_model``
       with ``custom_objects``.

    Layers that draw random numbers must be given a seed and must not have
    been called before: every copy starts from the same seed state.

    Args:
        layer: the Keras layer under test (not called yet).
        inputs: NumPy array, or list of arrays, exactly as the layer's
            ``call`` takes them.
        expected_output_shape: shape tuple, or list of shape tuples for a
            layer with several outputs.
        expected_output_dtype: dtype name, or list of names per output.
        custom_objects: extra ``{name: class}`` for loading; the layer's own
            class is always included.
        rtol, atol: tolerances of the output comparisons.
        config_exclude: constructor arguments deliberately absent from the
            config.
        run_saving: set False to skip check 3.

    Returns:
        The layer's eager outputs as NumPy: one array, or a list.

    Raises:
        AssertionError: a check failed.
        TypeError: ``layer`` is not a Keras layer or ``inputs`` are not
            NumPy arrays.
    """
    if not isinstance(layer, _BASE_LAYER):
        raise TypeError(
            f"run_layer_test expects a keras.layers.Layer; got {type(layer)!r}.")
    multi_input = isinstance(inputs, (list, tuple))
    input_list = list(inputs) if multi_input else [inputs]
    for x in input_list:
        if not isinstance(x, np.ndarray):
            raise TypeError(
                "run_layer_test expects NumPy array inputs; got "
                f"{type(x)!r}.")
    name = type(layer).__name__
    call_inputs = input_list if multi_input else input_list[0]

    def symbolic(make):
        out = [make(x) for x in input_list]
        return out if multi_input else out[0]

    # Build symbolically (no random state is consumed) to snapshot the
    # initial weights, then call eagerly.
    if not layer.built:
        layer(symbolic(_keras_tensor))
    initial_weights = layer.get_weights()
    outputs = layer(call_inputs)
    multi_output = isinstance(outputs, (list, tuple))
    output_list = list(outputs) if multi_output else [outputs]
    actual_shapes = [tuple(int(d) for d in ops.shape(o)) for o in output_list]
    actual_dtypes = [keras.backend.standardize_dtype(o.dtype)
                     for o in output_list]
    eager = [ops.convert_to_numpy(o) for o in output_list]

    _check_shapes(layer, input_list, multi_input, multi_output,
                  actual_shapes, actual_dtypes, expected_output_shape,
                  expected_output_dtype, symbolic)

    clone = _check_config(layer, config_exclude)
    if initial_weights:
        clone(symbolic(_keras_tensor))
        clone.set_weights(initial_weights)
    clone_out = _as_list(clone(call_inputs), multi_output, name,
                         "the from_config clone")
    _assert_outputs_close(name, "from_config clone vs original", eager,
                          [ops.convert_to_numpy(o) for o in clone_out],
                          rtol, atol)

    if run_saving:
        _check_saving(layer, call_inputs, symbolic, initial_weights, eager,
                      multi_output, custom_objects, rtol, atol)
    return eager if multi_output else eager[0]


def _keras_tensor(x):
    return keras.KerasTensor(x.shape, dtype=str(x.dtype))


def _keras_input(x):
    return keras.Input(shape=x.shape[1:], batch_size=x.shape[0],
                       dtype=str(x.dtype))


def _as_shape(shape):
    return tuple(None if d is None else int(d) for d in shape)


def _as_list(outputs, multi_output, name, what):
    if isinstance(outputs, (list, tuple)) != multi_output:
        raise AssertionError(
            f"{name}: {what} returns {type(outputs).__name__}, but the "
            f"layer's eager call returns "
            f"{'a list' if multi_output else 'one tensor'}.")
    return list(outputs) if multi_output else [outputs]


def _shape_list(shapes, multi_output, name, what):
    """Normalizes a shape (or list of shapes) from the layer or the caller."""
    if multi_output:
        if not isinstance(shapes, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) for s in shapes):
            raise AssertionError(
                f"{name}: {what} is {shapes!r}; expected a list of shapes, "
                "one per output.")
        return [_as_shape(s) for s in shapes]
    if not isinstance(shapes, (list, tuple)) or any(
            isinstance(d, (list, tuple)) for d in shapes):
        raise AssertionError(
            f"{name}: {what} is {shapes!r}; expected one shape tuple.")
    return [_as_shape(shapes)]


def _check_shapes(layer, input_list, multi_input, multi_output, actual_shapes,
                  actual_dtypes, expected_output_shape, expected_output_dtype,
                  symbolic):
    name = type(layer).__name__
    if type(layer).compute_output_shape is _BASE_LAYER.compute_output_shape:
        raise AssertionError(f"{name} does not implement compute_output_shape.")
    input_shapes = [tuple(x.shape) for x in input_list]
    if not multi_input:
        input_shapes = input_shapes[0]
    computed = layer.compute_output_shape(input_shapes)
    computed = _shape_list(computed, multi_output, name,
                           "compute_output_shape(...)")
    if computed != actual_shapes:
        raise AssertionError(
            f"{name}: compute_output_shape({input_shapes}) = {computed}, but "
            f"the eager call gives shapes {actual_shapes}.")
    if expected_output_shape is not None:
        expected = _shape_list(expected_output_shape, multi_output, name,
                               "expected_output_shape")
        if expected != actual_shapes:
            raise AssertionError(
                f"{name}: output shapes {actual_shapes}; expected {expected}.")
    if expected_output_dtype is not None:
        expected = (list(expected_output_dtype) if multi_output
                    else [expected_output_dtype])
        expected = [keras.backend.standardize_dtype(d) for d in expected]
        if expected != actual_dtypes:
            raise AssertionError(
                f"{name}: output dtypes {actual_dtypes}; expected {expected}.")

    symbolic_out = _as_list(layer(symbolic(_keras_tensor)), multi_output,
                            name, "the symbolic call")
    symbolic_shapes = [_as_shape(o.shape) for o in symbolic_out]
    if symbolic_shapes != actual_shapes:
        raise AssertionError(
            f"{name}: a call on KerasTensors gives shapes {symbolic_shapes}, "
            f"the eager call {actual_shapes}.")
    if type(layer).compute_output_spec is not _BASE_LAYER.compute_output_spec:
        spec = _as_list(layer.compute_output_spec(symbolic(_keras_tensor)),
                        multi_output, name, "compute_output_spec")
        spec_shapes = [_as_shape(s.shape) for s in spec]
        spec_dtypes = [keras.backend.standardize_dtype(s.dtype) for s in spec]
        if spec_shapes != actual_shapes or spec_dtypes != actual_dtypes:
            raise AssertionError(
                f"{name}: compute_output_spec gives shapes {spec_shapes} and "
                f"dtypes {spec_dtypes}; the eager call gives {actual_shapes} "
                f"and {actual_dtypes}.")


def _check_config(layer, config_exclude):
    """Checks the config round trip by value; returns the re-created layer."""
    name = type(layer).__name__
    config = layer.get_config()
    parameters = inspect.signature(type(layer).__init__).parameters
    arguments = [p.name for p in list(parameters.values())[1:]
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [a for a in arguments
               if a not in config and a not in config_exclude]
    if missing:
        raise AssertionError(
            f"{name}.get_config() lacks constructor argument(s) {missing}; "
            f"its keys are {sorted(config)}.")
    try:
        clone = type(layer).from_config(config)
    except Exception as error:  # any failure to re-create is the finding
        raise AssertionError(
            f"{name}.from_config(get_config()) fails: "
            f"{type(error).__name__}: {error}") from error
    original, again = normalize_config(config), normalize_config(
        clone.get_config())
    if original != again:
        changed = sorted(k for k in set(original) | set(again)
                         if original.get(k, "<absent>") != again.get(
                             k, "<absent>"))
        raise AssertionError(
            f"{name}: get_config() changes in the from_config round trip at "
            f"{changed}: " + "; ".join(
                f"{k}: {original.get(k, '<absent>')!r} -> "
                f"{again.get(k, '<absent>')!r}" for k in changed))
    return clone


def _assert_outputs_close(name, what, want, got, rtol, atol):
    if len(want) != len(got):
        raise AssertionError(
            f"{name}: {what}: {len(got)} outputs, expected {len(want)}.")
    for i, (w, g) in enumerate(zip(want, got)):
        g = np.asarray(g)
        if w.shape != g.shape:
            raise AssertionError(
                f"{name}: {what}: output {i} has shape {g.shape}, expected "
                f"{w.shape}.")
        np.testing.assert_allclose(
            g, w, rtol=rtol, atol=atol,
            err_msg=f"{name}: {what}: output {i} differs")


def _check_saving(layer, call_inputs, symbolic, initial_weights, eager,
                  multi_output, custom_objects, rtol, atol):
    name = type(layer).__name__
    fresh = type(layer).from_config(layer.get_config())
    model_inputs = symbolic(_keras_input)
    model = keras.Model(model_inputs, fresh(model_inputs))
    if initial_weights:
        fresh.set_weights(initial_weights)
    objects = {name: type(layer), **(custom_objects or {})}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        # Saved before any call, so a seeded layer's state is the initial one.
        try:
            model.save(path)
            loaded = keras.saving.load_model(path, custom_objects=objects)
        except Exception as error:  # any failure to save / load is the finding
            raise AssertionError(
                f"{name}: saving or loading a model holding the layer fails: "
                f"{type(error).__name__}: {error}") from error
    for what, net in (("functional model", model), ("loaded model", loaded)):
        got = _as_list(net.predict_on_batch(call_inputs), multi_output, name,
                       what)
        _assert_outputs_close(name, f"{what} vs eager call", eager, got,
                              rtol, atol)


def readme_block(marker, path=None):
    """The first ```python block after ``<!-- marker -->`` in README.md (documented code, run as written)."""
    import os
    import re

    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    text = open(path, encoding="utf-8").read()
    if f"<!-- {marker} -->" not in text:
        raise AssertionError(f"README.md has no <!-- {marker} --> block")
    block = text.split(f"<!-- {marker} -->", 1)[1]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def load_file_module(name, path):
    """The Python file at `path` (relative to the repository root) as a fresh module `name`."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sample_script(name, sample="cell"):
    """`samples/<sample>/<name>.py` as a fresh module (its `main(argv)`, `build_parser()`)."""
    return load_file_module(f"{sample}_{name}", os.path.join("samples", sample, name + ".py"))


# ----------------------------------------------- samples/cell/README.md recipes at tiny sizes
# Appended to a documented train.py command (argparse keeps the last value of a repeated
# flag): the small CNN on 64x64 crops, one step per epoch, 3 folds; the anchors of 64 px images.
CELL_SMALL_FLAGS = ["--backbone", "small-cnn", "--image-mode", "crop", "--crop-size", "64",
                    "--steps-per-epoch", "1", "--validation-steps", "1", "--folds", "3",
                    "--max-gt-instances", "32", "--anchor-scales", "8,16,32,64,128"]


def readme_commands(marker, document="README.md"):
    """The command lines of the ```bash block after <!-- marker --> in `document` (a path from
    the repository root), each split into words."""
    import re
    import shlex

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, document), encoding="utf-8").read()
    assert f"<!-- {marker} -->" in text, f"{document} lost <!-- {marker} -->"
    block = re.search(r"```bash\n(.*?)```", text.split(f"<!-- {marker} -->", 1)[1], re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def import_sample_module(folder):
    """A sample module imported as Matterport's notebooks did: its folder (e.g. samples/coco)
    appended to sys.path, then `import <name>`; checked to come from that folder."""
    import importlib
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(root, folder)
    sys.path.append(folder)
    try:
        module = importlib.import_module(os.path.basename(folder))
    finally:
        sys.path.remove(folder)
    assert os.path.dirname(module.__file__) == folder, module.__file__
    return module


def cell_readme_commands(marker):
    """`readme_commands` of samples/cell/README.md."""
    return readme_commands(marker, os.path.join("samples", "cell", "README.md"))


def write_livecell(folder, n_train=3, size=64):
    """LIVECell-like COCO json files (train, val; one 'cell' category, rectangle polygons)
    over generated grayscale images in one folder per cell line, as the README's
    `--coco livecell_coco_train.json livecell_coco_val.json livecell/images/...` expects."""
    import json

    from PIL import Image

    images = folder / "livecell" / "images" / "livecell_train_val_images" / "A172"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, ids in (("train", range(n_train)), ("val", range(n_train, n_train + 1))):
        data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
        for i in ids:
            pixels = np.full((size, size), 40, np.uint8)
            for k in range(3):
                y, x = (int(v) for v in rng.integers(4, size - 20, 2))
                pixels[y:y + 14, x:x + 12] = 200
                data["annotations"].append({
                    "id": 100 * i + k, "image_id": i, "category_id": 1, "iscrowd": 0,
                    "segmentation": [[x, y, x + 12, y, x + 12, y + 14, x, y + 14]]})
            Image.fromarray(pixels).save(images / f"A172_{i}.png")
            data["images"].append({"id": i, "file_name": f"A172_{i}.png", "height": size,
                                   "width": size})
        (folder / f"livecell_coco_{split}.json").write_text(json.dumps(data))


def without_device_count(env, default_optimisation=False):
    """`env` (a dict, changed in place and returned) without XLA_FLAGS' host device count.

    A subprocess that sets up its own devices (``mrcnn.distribute.use_devices``)
    must not inherit a count; the other XLA flags stay, tests/conftest.py's
    optimisation level too unless `default_optimisation` (then the subprocess
    compiles as a user's run does: a test that compares two programs' floats
    to 1e-5 over several training steps compares them as they are shipped).
    """
    dropped = ["--xla_force_host_platform_device_count"]
    if default_optimisation:
        dropped.append("--xla_backend_optimization_level")
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not any(f.startswith(d) for d in dropped)]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    return env
