"""What a killed training left behind: checked with the library's readers and by hand.

`footprint` checks the files one targeted kill interrupted (the fault fired
where planned; the half-written or un-renamed temporary file is there and is
not taken for a finished checkpoint, cache entry, ``history.csv`` or
``config.json``). The other functions check the final state of a model_dir:
checkpoints (the library's verified reader, plus every array's SHA-256
recomputed here with hashlib), cache entries (decoded against the key they
are stored under), ``history.csv`` rows and leftover temporary files.
"""

import csv
import fnmatch
import hashlib
import math
import os

import numpy as np

from tests.faults import injection, training_setup

# Temporary files the library writes, by kind (as `injection.classify` names them).
TEMP_PATTERNS = {"checkpoint": ".tmp-*.h5", "history": ".tmp-history-*.csv",
                 "config": ".tmp-*.json", "cache": ".*.tmp"}
KILLED = -9


def files_matching(folder, pattern, recursive=False):
    """Paths of the files in `folder` (and below, if `recursive`) whose name matches `pattern`."""
    found = []
    for here, _, names in (os.walk(folder) if recursive else [next(os.walk(folder))]):
        found += [os.path.join(here, n) for n in names if fnmatch.fnmatch(n, pattern)]
    return sorted(found)


def run_folders(model_dir):
    """Run folders of the victim's config under `model_dir`."""
    from mrcnn.training import runs

    name = runs.run_name(training_setup.victim_config(model_dir).NAME)
    return sorted(os.path.join(model_dir, d) for d in os.listdir(model_dir)
                  if d.startswith(name) and os.path.isdir(os.path.join(model_dir, d)))


def newest_run_folder(model_dir):
    """The folder of the newest checkpoint (the run that resumed to the end)."""
    from mrcnn.training import runs

    return os.path.dirname(runs.find_last(model_dir, training_setup.victim_config(model_dir).NAME))


# ------------------------------------------------------------------ checkpoints
def sha256_of(array):
    """SHA-256 (hex) of an array's bytes, little-endian C order (computed here, not by mrcnn)."""
    a = np.asarray(array)
    return hashlib.sha256(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def checkpoint_arrays(path):
    """{dataset path: (array, stored sha256 or None)} of every array in an HDF5 file (h5py)."""
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                stored = obj.attrs.get("sha256")
                stored = stored.decode() if isinstance(stored, bytes) else stored
                found[name] = (np.asarray(obj[()]), stored)
        f.visititems(visit)
    return found


def checkpoint_problems(path):
    """Why checkpoint `path` is not intact ([] when it is).

    It must read with the library's verified reader (`read_named_weights`
    checks each array's SHA-256), every array must carry a SHA-256 that
    matches the one computed here, and every value must be finite.
    """
    from mrcnn.weights import h5

    problems = []
    try:
        h5.read_named_weights(path)
    except (OSError, ValueError) as error:
        problems.append(f"{path}: the library's reader refuses it: {error}")
    try:
        arrays = checkpoint_arrays(path)
    except OSError as error:
        return problems + [f"{path}: h5py cannot read it: {error}"]
    if not arrays:
        problems.append(f"{path}: holds no arrays")
    for name, (array, stored) in arrays.items():
        if stored is None:
            problems.append(f"{path}: {name} has no SHA-256")
        elif stored != sha256_of(array):
            problems.append(f"{path}: {name} does not match its SHA-256")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(f"{path}: {name} is not finite")
    return problems


# ------------------------------------------------------------------ cache
def cache_entry_files(cache_dir):
    """Entry files (``*.lz4``) of the disk cache, all format versions."""
    return files_matching(cache_dir, "*.lz4", recursive=True)


def cache_problems(cache_dir):
    """Entries that fail their check: each ``<key>.lz4`` decoded against ``<key>``."""
    from mrcnn.data.cache import CacheEntryError, decode_entry

    problems = []
    for path in cache_entry_files(cache_dir):
        key = os.path.basename(path)[:-len(".lz4")]
        with open(path, "rb") as f:
            blob = f.read()
        try:
            arrays = decode_entry(blob, key)
        except CacheEntryError as error:
            problems.append(f"{path}: {error}")
            continue
        if not arrays:
            problems.append(f"{path}: decodes to no arrays")
    return problems


def temp_key(path):
    """The key in a cache temporary file's name ``.<key>.<random>.tmp``."""
    return os.path.basename(path)[1:].split(".")[0]


# ------------------------------------------------------------------ history
def history_problems(path, epochs):
    """Why ``history.csv`` is not one row per epoch 0..epochs-1 with finite losses."""
    if not os.path.exists(path):
        return [f"{path} does not exist"]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    problems = []
    listed = [r.get("epoch") for r in rows]
    if listed != [str(e) for e in range(epochs)]:
        problems.append(f"{path} lists epochs {listed}, expected 0..{epochs - 1} once each")
    for row in rows:
        for key in ("loss", "val_loss"):
            try:
                value = float(row.get(key))
            except (TypeError, ValueError):
                value = None
            if value is None or not math.isfinite(value):
                problems.append(f"{path}: epoch {row.get('epoch')} has {key}={row.get(key)!r}")
    return problems


# ------------------------------------------------------------------ one kill
def footprint(spec_text, result, model_dir, before):
    """Problems with what the targeted kill `spec_text` did and left ([] when as planned).

    Args:
        spec_text: the fault spec of the run.
        result: `scenario.run_victim`'s result.
        model_dir: the victim's model_dir.
        before: the set of file paths under model_dir before the run.
    """
    spec = injection.FaultSpec(spec_text)
    info = result["fault"]
    if result["rc"] != KILLED or info is None or info.get("fault") != str(spec):
        return [f"the fault did not fire as planned: rc {result['rc']}, FAULT line {info}, "
                f"victim said {result['started']!r} ... done {result['done']}; output: "
                f"{result['output'][-1500:]}"]
    if spec.kind == "step":
        return _step_footprint(spec, result, model_dir)
    path = info["path"]
    problems = []
    if not os.path.isfile(path):
        return [f"the interrupted temporary file {path} is not there"]
    if path in before:
        problems.append(f"{path} existed before the run")
    if not fnmatch.fnmatch(os.path.basename(path), TEMP_PATTERNS[spec.kind]):
        problems.append(f"{path} is not named like a {spec.kind} temporary file")
    if spec.phase == "rename" and os.path.exists(info["target"]) \
            and os.fspath(info["target"]) not in before:
        problems.append(f"{info['target']} appeared although the rename was killed")
    check = {"checkpoint": _checkpoint_footprint, "cache": _cache_footprint,
             "history": _history_footprint, "config": _config_footprint}[spec.kind]
    return problems + check(spec, path, info, model_dir, before)


def _start_epoch(result):
    words = (result["started"] or "").split()
    return int(words[-1]) if words and words[0] == "resumed" else 0


def _step_footprint(spec, result, model_dir):
    from mrcnn.training import runs

    epoch = _start_epoch(result) + (spec.index - 1) // training_setup.STEPS_PER_EPOCH + 1
    saved = {runs.checkpoint_epoch(p) for p in runs.list_checkpoints(model_dir)}
    problems = []
    if epoch in saved:
        problems.append(f"checkpoint {epoch} exists although its epoch was killed at a step")
    if epoch > 1 and epoch - 1 not in saved:
        problems.append(f"checkpoint {epoch - 1} (the epoch before the kill) is missing")
    return problems


def _checkpoint_footprint(spec, path, info, model_dir, before):
    from mrcnn.training import runs

    problems = []
    if path in runs.list_checkpoints(model_dir) or runs.checkpoint_epoch(path) is not None:
        problems.append(f"{path} is taken for a checkpoint")
    damage = checkpoint_problems(path)
    if spec.phase == "partial" and not damage:
        problems.append(f"{path} was killed after {info['arrays_written']} arrays but "
                        f"reads as a whole checkpoint")
    if spec.phase == "rename" and damage:
        problems.append(f"{path} was complete before the rename but: {damage}")
    return problems


def _cache_footprint(spec, path, info, model_dir, before):
    from mrcnn.data.cache import CacheEntryError, SampleCache, decode_entry

    problems = []
    key = temp_key(path)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        decode_entry(blob, key)
        complete = True
    except CacheEntryError:
        complete = False
    if spec.phase == "partial" and (complete or len(blob) != info["written"]):
        problems.append(f"{path}: {len(blob)} bytes (killed after {info['written']} of "
                        f"{info['of']}) but decodes={complete}")
    if spec.phase == "rename" and not complete:
        problems.append(f"{path} was complete before the rename but does not decode")
    cache = SampleCache(training_setup.cache_dir(model_dir))
    entries = cache_entry_files(training_setup.cache_dir(model_dir))
    if cache.stats().entries != len(entries):
        problems.append(f"the cache counts {cache.stats().entries} entries, "
                        f"{len(entries)} entry files are there (temporary files counted?)")
    if cache.path(key) not in before:   # a first write (not a rewrite of a corrupt entry)
        if os.path.exists(cache.path(key)):
            problems.append(f"the entry {cache.path(key)} exists although its write was killed")
        if cache.get(key) is not None:
            problems.append(f"the cache returns data for {key} although its write was killed")
    return problems


def _history_footprint(spec, path, info, model_dir, before):
    folder = os.path.dirname(path)
    history = os.path.join(folder, "history.csv")
    problems = []
    if os.path.exists(history):
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = [int(r["epoch"]) for r in rows]
        if epochs != sorted(set(epochs)):
            problems.append(f"{history} lists epochs {epochs} after the kill")
    return problems


def _config_footprint(spec, path, info, model_dir, before):
    from mrcnn.config import load_config

    config = os.path.join(os.path.dirname(path), "config.json")
    try:
        load_config(config)
    except (OSError, ValueError) as error:
        return [f"{config} does not load after the kill: {error}"]
    return []
