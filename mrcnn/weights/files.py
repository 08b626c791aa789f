"""Weight files on disk: where named files are looked for, downloads, checks.

A manifest entry (see `mrcnn.weights.catalog`), or its name, resolves to a
local file first; the network is used only when asked for. Search order for
a named file (e.g. ``mask_rcnn_coco.h5``):

1. each folder in ``$MRCNN_WEIGHTS_DIR`` (several may be joined with
   ``os.pathsep``; on Kaggle, an attached dataset under ``/kaggle/input``);
2. the Keras cache, ``$KERAS_HOME/models`` or ``~/.keras/models`` (where
   ``keras.applications`` keeps the ImageNet files it downloaded);
3. the current directory (where Matterport's samples kept ``mask_rcnn_coco.h5``);
4. only with ``allow_download=True``: a download to the first writable
   folder of ``$MRCNN_WEIGHTS_DIR``, else the Keras cache (10 s socket
   timeout, proxies from the environment, written atomically, checked
   against the manifest).

When the file is missing the error names the file, every folder searched
and the ways to provide it, without touching the network.

A local copy found by name is checked against its entry before it is used
(`check_local_file`: the size, the md5 where published, the sha256 where
recorded), since anything may sit under a well-known name: a mismatch is a
ValueError naming the file, what was expected and found, and the opt-out
(``verify=False``). Hashes are computed once per process for each
(path, size, mtime) (`cached_digests`).
"""

import hashlib
import logging
import os

from mrcnn.download import fetch_url as _fetch
from mrcnn.weights import h5
from mrcnn.weights.catalog import get_entry

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "MRCNN_WEIGHTS_DIR"
COCO_WEIGHTS_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
DOWNLOAD_TIMEOUT_S = 10


def _entry(entry):
    """A manifest entry given as a dict or by name."""
    return get_entry(entry) if isinstance(entry, str) else entry


# ------------------------------------------------------------------ locating
def keras_cache_dir():
    """Folder where keras.applications keeps downloaded weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def search_dirs():
    """[(label, folder)] searched for named weight files, in order."""
    dirs = [(f"${WEIGHTS_DIR_ENV}", d)
            for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if d]
    dirs.append(("Keras cache", keras_cache_dir()))
    dirs.append(("current directory", os.getcwd()))
    return dirs


def find_weights(entry):
    """Path of the local copy of a manifest entry (dict or name), or None (no network)."""
    filename = _entry(entry)["file"]
    for _, folder in search_dirs():
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def default_download_dir():
    """First writable folder of ``$MRCNN_WEIGHTS_DIR``, else the Keras cache."""
    for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep):
        if d and os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    return keras_cache_dir()


def missing_weights_message(entry, download_error=None):
    """The error text for a named file that is not found: where we looked, how to fix."""
    entry = _entry(entry)
    name, f = entry["name"], entry["file"]
    lines = [f"pretrained weights {name!r} not found: no file {f} ({entry['description']})",
             "Looked in:"]
    if not os.environ.get(WEIGHTS_DIR_ENV):
        lines.append(f"  - ${WEIGHTS_DIR_ENV}: not set")
    lines += [f"  - {label}: {folder}" for label, folder in search_dirs()]
    size = f", {entry['size']:,} bytes" if entry.get("size") else ""
    if download_error is not None:
        lines.append(f"Downloading {entry.get('url') or f} failed: {download_error}")
    else:
        lines.append("Nothing was downloaded (allow_download=False).")
    source = (f"download {entry['url']}{size} where a network exists and put {f}"
              if entry.get("url") else f"put {f}")
    lines += [
        "To provide it, do one of:",
        f"  - {source} in a folder "
        f"named by ${WEIGHTS_DIR_ENV} (e.g. on Kaggle attach a dataset holding it and set "
        f"os.environ['{WEIGHTS_DIR_ENV}'] = '/kaggle/input/<dataset>'), or in {keras_cache_dir()};",
        f"  - run `python weights/download.py {name}` (from the repository) where a network exists;",
        f"  - allow the download: model.load_weights(..., allow_download=True) "
        f"(saves to {default_download_dir()});",
        "  - or pass the file's path instead of the name.",
    ]
    return "\n".join(lines)


def locate_weights(entry, allow_download=False, directory=None, timeout=DOWNLOAD_TIMEOUT_S,
                   verbose=1, verify=True):
    """Path of a manifest entry's file: a local copy, else (if allowed) a download.

    Args:
        entry: a manifest entry (dict) or its name ("coco", "imagenet-resnet50", ...).
        allow_download: download when no local copy exists.
        directory: where to download to (default `default_download_dir()`).
        timeout: socket timeout of the download in seconds.
        verify: check a local copy against the entry (`check_local_file`);
            False uses whatever file has the name. Downloads are always checked.

    Raises:
        FileNotFoundError: not found (and not downloaded); the message says
            where it looked and how to provide the file.
        ValueError: with `verify`, the local copy does not match the entry.
    """
    entry = _entry(entry)
    path = find_weights(entry)
    if path is not None:
        if verify:
            check_local_file(path, entry)
        return path
    if not allow_download:
        raise FileNotFoundError(missing_weights_message(entry))
    try:
        return download_weights(entry, directory=directory, timeout=timeout, verbose=verbose)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(missing_weights_message(entry, download_error=exc)) from exc


# --------------------------------------------------------------- verifying
def file_digests(path, chunk=1 << 22):
    """(size in bytes, md5 hex, sha256 hex) of a file."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return size, md5.hexdigest(), sha.hexdigest()


_DIGESTS = {}   # (real path, size, mtime_ns) -> (size, md5, sha256)


def cached_digests(path):
    """`file_digests` of `path`, computed once per process for each (path, size, mtime)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digests(path)
    return _DIGESTS[key]


def _remember_digests(path, digests):
    """Record the digests of a file just written (a download), so it is not hashed again."""
    st = os.stat(path)
    _DIGESTS[(os.path.realpath(path), st.st_size, st.st_mtime_ns)] = tuple(digests)


def _needs_hash(entry):
    return bool(entry.get("sha256")) or entry["verify"] == "md5"


def digest_problems(entry, digests):
    """Why (size, md5, sha256) does not match the entry: a list of "found, expected" texts.

    md5 / sha256 may be None when the entry does not need them.

    Raises:
        ValueError: the entry's ``verify`` is neither "md5" nor "size".
    """
    size, md5, sha = digests
    problems = []
    if entry.get("sha256") and sha != entry["sha256"]:
        problems.append(f"sha256 {sha}, expected {entry['sha256']}")
    if entry["verify"] == "md5":
        allowed = [entry["md5"]] + list(entry.get("alternative_md5") or [])
        if md5 not in allowed:
            problems.append(f"md5 {md5}, expected {' or '.join(allowed)}")
    elif entry["verify"] == "size":
        if entry.get("size") and size != entry["size"]:
            problems.append(f"{size:,} bytes, expected {entry['size']:,}")
    else:
        raise ValueError(f"manifest entry {entry['name']!r}: verify must be 'md5' or 'size', "
                         f"got {entry['verify']!r}")
    return problems


def check_local_file(path, entry):
    """Refuse a local copy of a named file that does not match its entry.

    Checks the size (``verify="size"``), the md5 (``verify="md5"``) and the
    sha256 when one is recorded (`mrcnn.weights.catalog.record_sha256`, or
    ``sha256=`` in a backbone's ``pretrained`` declaration). The file is
    hashed only when a hash is to be checked, once per (path, size, mtime).

    Raises:
        ValueError: naming the file, the entry, what was expected and
            found, and how to replace the file or skip the check.
    """
    entry = _entry(entry)
    digests = (cached_digests(path) if _needs_hash(entry)
               else (os.path.getsize(path), None, None))
    problems = digest_problems(entry, digests)
    if problems:
        name = entry["name"]
        raise ValueError(
            f"{path} does not match the manifest entry {name!r}: found "
            f"{'; found '.join(problems)}. It may be another file saved as {entry['file']}, "
            f"an incomplete copy or a tampered file. Replace it (`python weights/download.py "
            f"{name} --force` where a network exists), pass the file's path instead of the "
            f"name, or, if you trust this file, skip this check: "
            f"load_weights(..., verify=False)")


def verify_file(path, entry, digests=None):
    """Check a weights file against its manifest entry.

    Args:
        path: the file.
        entry: a manifest entry (dict) or its name.
        digests: (size, md5, sha256) if already computed.

    Returns:
        dict: ``ok`` (bool: size/hash checks passed), ``size``, ``md5``,
        ``sha256``, ``problems`` (why not ok) and ``warnings`` (e.g. a layer
        count that differs from ``weighted_layers``, which is not verified
        against the published files).

    Raises:
        ValueError: the entry's ``verify`` is neither "md5" nor "size".
    """
    entry = _entry(entry)
    size, md5, sha = digests or cached_digests(path)
    problems, warnings = digest_problems(entry, (size, md5, sha)), []
    try:
        names = h5.file_layer_names(path, with_weights=True)
    except (OSError, ValueError) as exc:
        problems.append(f"not a readable HDF5 file ({exc})")
        names = None
    count = None if names is None else len(names)
    if count is not None and entry.get("weighted_layers") and count != entry["weighted_layers"]:
        warnings.append(f"{count} layers hold weights, the manifest expects "
                        f"{entry['weighted_layers']}")
    return {"ok": not problems, "size": size, "md5": md5, "sha256": sha,
            "problems": problems, "warnings": warnings}


# --------------------------------------------------------------- downloading
def download_weights(entry, directory=None, timeout=DOWNLOAD_TIMEOUT_S, verbose=1, url=None):
    """Download a manifest entry's file and check it; return the file's path.

    Args:
        entry: a manifest entry (dict) or its name ("coco",
            "imagenet-efficientnetv2-b0", ...).
        directory: target folder (default `default_download_dir()`).
        timeout: socket timeout in seconds (connect and each read).
        verbose: print progress.
        url: another source for the same file (a mirror, or ``file://``).

    Raises:
        OSError: the download failed (no network, proxy refused, timeout).
        ValueError: the entry has no url and none was given, or the
            downloaded file fails the manifest's size/hash check (it is deleted).
    """
    entry = _entry(entry)
    url = url or entry.get("url")
    if not url:
        raise ValueError(f"no url is known for {entry['name']!r} ({entry['file']}); "
                         f"put the file in a folder named by ${WEIGHTS_DIR_ENV}")
    directory = directory or default_download_dir()
    target = os.path.join(directory, entry["file"])
    if verbose:
        print(f"Downloading {url} to {target} ...")
    part = target + ".unverified"
    try:
        digests = _fetch(url, part, timeout, verbose)
    except OSError as exc:
        raise OSError(f"could not download {url} ({exc}). Without network access, get "
                      f"{entry['file']} elsewhere and put it in {directory} or in a folder "
                      f"named by ${WEIGHTS_DIR_ENV}") from exc
    check = verify_file(part, entry, digests=digests)
    if not check["ok"]:
        os.remove(part)
        raise ValueError(f"downloaded {url} but it does not match the manifest "
                         f"({'; '.join(check['problems'])}); the file was deleted")
    os.replace(part, target)
    _remember_digests(target, digests)
    for warning in check["warnings"]:
        log.warning("%s: %s", target, warning)
    if verbose:
        print(f"... done ({digests[0]:,} bytes, md5 {digests[1]})")
    return target


def download_trained_weights(coco_model_path, verbose=1, url=COCO_WEIGHTS_URL,
                             timeout=DOWNLOAD_TIMEOUT_S):
    """Download Matterport's COCO weights to ``coco_model_path`` (Matterport's API).

    Written atomically and checked against the manifest's size.

    Raises:
        OSError: the download failed; the message says where to put a
            manually downloaded copy.
        ValueError: the file does not have the expected size.
    """
    target = os.path.abspath(os.fspath(coco_model_path))
    if verbose:
        print(f"Downloading pretrained model to {target} ...")
    try:
        digests = _fetch(url, target + ".unverified", timeout, verbose=0)
    except OSError as exc:
        raise OSError(
            f"could not download {url} ({exc}). Without network access, download the "
            f"file elsewhere and copy it to {target}, or put it in a folder named by "
            f"the {WEIGHTS_DIR_ENV} environment variable.") from exc
    check = verify_file(target + ".unverified", "coco", digests=digests)
    if not check["ok"]:
        os.remove(target + ".unverified")
        raise ValueError(f"downloaded {url} but {'; '.join(check['problems'])}; deleted")
    os.replace(target + ".unverified", target)
    if verbose:
        print("... done downloading pretrained model!")
    return target
