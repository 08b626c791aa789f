"""Fixtures of the mrcnn.weights tests: empty weight folders and no network."""

import socket

import pytest

from mrcnn.weights import WEIGHTS_DIR_ENV


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
