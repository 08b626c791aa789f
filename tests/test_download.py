"""mrcnn.download.fetch_url: the whole file or nothing, hashes of what was written."""

import hashlib
import io
import os
import urllib.error
import urllib.request

import pytest

from mrcnn.download import fetch_url

pytestmark = pytest.mark.backend_independent


def test_fetch_writes_the_file_and_its_hashes(tmp_path):
    data = os.urandom(3 << 20)              # three of fetch_url's 1 MiB blocks
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    target = tmp_path / "new" / "file.bin"            # a folder that does not exist yet
    size, md5, sha256 = fetch_url(source.as_uri(), str(target), timeout=5, verbose=0)
    assert target.read_bytes() == data and size == len(data)
    assert md5 == hashlib.md5(data).hexdigest() and sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(target.parent) == ["file.bin"]


def test_a_failed_or_broken_download_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    with pytest.raises(urllib.error.URLError):
        fetch_url((tmp_path / "missing.bin").as_uri(), str(target), timeout=5, verbose=0)
    assert os.listdir(tmp_path) == []

    class Broken(io.BytesIO):
        """A response that delivers one block, then loses the connection."""
        headers = {"Content-Length": str(4 << 20)}

        def read(self, n=-1):
            if self.tell():
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read(n)

    class Opener:
        def open(self, url, timeout):
            return Broken(b"x" * (1 << 20))

    monkeypatch.setattr(urllib.request, "build_opener", Opener)
    target.write_bytes(b"an older whole file")
    with pytest.raises(ConnectionResetError):
        fetch_url("https://example.invalid/file.bin", str(target), timeout=5, verbose=0)
    assert os.listdir(tmp_path) == ["file.bin"]                      # no .part left behind
    assert target.read_bytes() == b"an older whole file"             # not replaced by a piece
