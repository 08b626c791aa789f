"""Session-wide test settings and shared runs.

On the JAX backend, XLA's compiled programs are kept in a compilation cache
for the session (a temporary folder, removed at the end). Most model tests
build the same tiny config (tests/model_helpers.py) as new Keras models, and
each new model is traced and compiled again; identical programs then load
the executable XLA already made instead of compiling it once more (JAX's
persistent cache: same program, same compile options, same executable). It
halved tests/training/test_resume.py on JAX (322 s -> 129 s on a loaded
2-core machine). TensorFlow (no XLA on CPU) and PyTorch (eager) compile
nothing to cache.
"""

import os
import shutil
import socket
import tempfile
import types

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# XLA (JAX, and the JAX subprocesses of the TensorFlow pass, which inherit the
# environment) compiles the tests' programs with LLVM's optimisation level 0: the
# tests' tiny models spend most of their time compiling, and that is halved
# (tests/model_helpers' tiny config, build + one epoch on JAX: 43 s -> 27.5 s,
# 111 -> 64 CPU-seconds, 2-core AMD EPYC). It changes how fast the code runs and its
# float rounding, not what it computes (a test comparing two programs to 1e-5 over training
# steps compiles at the default: tests/distribute/test_data_parallel.py).
# MRCNN_TEST_XLA_OPT=1 keeps XLA's default.
XLA_TEST_FLAG = "--xla_backend_optimization_level=0"
if (os.environ.get("MRCNN_TEST_XLA_OPT", "0") == "0"
        and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAG}".strip()

_JAX_CACHE_DIR = None


def _backend():
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    import keras
    return keras.backend.backend()


def pytest_configure(config):
    global _JAX_CACHE_DIR
    if getattr(config.option, "loadscopereorder", None) is not None:
        # pytest-xdist >= 3.6 sends the files with the most tests first unless told not to;
        # the order of pytest_collection_modifyitems (longest first) is the one wanted
        config.option.loadscopereorder = False
    if _backend() != "jax" or os.environ.get("MRCNN_TEST_JAX_CACHE", "1") == "0":
        return
    import jax

    _JAX_CACHE_DIR = tempfile.mkdtemp(prefix="mrcnn-tests-xla-cache-")
    jax.config.update("jax_compilation_cache_dir", _JAX_CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if _JAX_CACHE_DIR:
        shutil.rmtree(_JAX_CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def livecell_pretrain(tmp_path_factory):
    """samples/cell/README.md's LIVECell pretraining command, run once for the session.

    The README's "Pretraining on LIVECell" (<!-- cell-livecell -->) and "The whole recipe"
    (<!-- cell-whole-recipe -->) start with the same command (checked here); their tests
    continue from this one run instead of training it twice. The command runs as written in
    a folder of generated LIVECell files (helpers.write_livecell), with
    helpers.CELL_SMALL_FLAGS, --init none (no ImageNet file offline) and --epochs 1 appended.

    Returns a namespace: `command` (the documented words), `argv` (what train.main got) and
    `copy_to(folder) -> run name`, which copies the LIVECell files and logs_livecell/<run>/
    into `folder` (a test's working directory), as if the command had run there.
    """
    from helpers import CELL_SMALL_FLAGS, cell_readme_commands, load_sample_script, write_livecell

    firsts = [cell_readme_commands(m)[0] for m in ("cell-livecell", "cell-whole-recipe")]
    assert firsts[0] == firsts[1], f"the two recipes no longer start alike: {firsts}"
    command = firsts[0]
    assert command[:2] == ["python", "samples/cell/train.py"] and "--coco" in command, command
    folder = tmp_path_factory.mktemp("livecell_pretrain")
    write_livecell(folder)
    argv = command[2:] + CELL_SMALL_FLAGS + ["--init", "none", "--epochs", "1"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(folder)
        load_sample_script("train").main(argv)
    run, = os.listdir(folder / "logs_livecell")

    def copy_to(target):
        for name in os.listdir(folder):
            source = folder / name
            if source.is_dir():
                shutil.copytree(source, target / name)
            else:
                shutil.copy2(source, target / name)
        return run

    return types.SimpleNamespace(command=command, argv=argv, copy_to=copy_to)


def pytest_collection_modifyitems(session, config, items):
    """Files with slow tests first, each file's tests in their own order.

    With two test processes (``-n 2 --dist loadfile``) the longest files then
    start early instead of being the last one process runs alone while the
    other has finished. The order is the same in every process (xdist checks).
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item):
        name = item.path.name
        if name in _LONGEST_FILES:
            return _LONGEST_FILES.index(name)
        return len(_LONGEST_FILES) + (item.path not in slow_files)

    items.sort(key=rank)                  # stable: each file's tests keep their order


# The longest files on the TensorFlow pass (--durations, 2-core AMD EPYC, 2026-12-01),
# longest first: test_learning 495 s, test_multiprocess 320 s, test_data_parallel 265 s,
# test_readme_several_machines 310 s, test_resume 280 s, test_cell_sample 250 s,
# test_whole_recipe 168 s, test_backends 186 s, the fault scenario 120 s.
_LONGEST_FILES = ("test_learning.py", "test_multiprocess.py", "test_readme_several_machines.py",
                  "test_resume.py", "test_data_parallel.py", "test_cell_sample.py",
                  "test_backends.py", "test_whole_recipe.py", "test_kill_and_resume.py",
                  "test_readme_devices.py", "test_pseudo_labels.py", "test_benchmarks.py",
                  "test_backbones_in_model.py", "test_cell_scale.py", "test_notebooks.py")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Empty weight folders, an unreachable proxy, and no DNS beyond localhost.

    Returns:
        {"weights_dir", "keras_home", "cwd"}: the folders ($MRCNN_WEIGHTS_DIR,
        $KERAS_HOME, the current directory).
    """
    dirs = {k: tmp_path / k for k in ("weights_dir", "keras_home", "cwd")}
    for d in dirs.values():
        d.mkdir()
    from mrcnn.weights import WEIGHTS_DIR_ENV

    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(dirs["weights_dir"]))
    monkeypatch.setenv("KERAS_HOME", str(dirs["keras_home"]))
    monkeypatch.chdir(dirs["cwd"])
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # discard port: connection refused
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test: network disabled (lookup of {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    return dirs
