"""CIFAR-100 loader on a small archive built here in the official format (no network)."""

from __future__ import annotations

import io
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

import hesslib as hl
from hesslib.nets import cifar
from hesslib.nets import cifar_files as files

N_TRAIN, N_TEST = 40, 10


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)  # the official files are protocol-2 pickles


def _split(n: int, rng: np.random.Generator) -> dict:
    return {
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
        b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }


def _write_archive(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


@pytest.fixture
def archive(tmp_path):
    rng = np.random.default_rng(0)
    train, test = _split(N_TRAIN, rng), _split(N_TEST, rng)
    meta = {
        b"fine_label_names": [f"class{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"super{i}".encode() for i in range(20)],
    }
    path = tmp_path / "src" / "cifar-100-python.tar.gz"
    path.parent.mkdir()
    files = {
        "train": _pickle_bytes(train),
        "test": _pickle_bytes(test),
        "meta": _pickle_bytes(meta),
    }
    _write_archive(path, files)
    return path, train, test, files


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real cache, no environment settings, and a network that is never reached."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # never the user's cache
    monkeypatch.setattr(files, "cifar100_cache_dir", lambda: cache)
    monkeypatch.setattr(cifar, "cifar100_cache_dir", lambda: cache)
    monkeypatch.delenv(cifar.CIFAR100_ENV, raising=False)
    monkeypatch.delenv(cifar.DOWNLOAD_ENV, raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(files.urllib.request, "urlopen", offline)


def test_loads_archive_normalised_channel_major(archive):
    path, train, _, _ = archive
    md5 = cifar.file_md5(path)
    data = hl.nets.cifar100(
        12, root=path.parent, md5=md5, seed=3, device="cpu", dtype=torch.float64
    )
    assert isinstance(data, hl.Dataset) and not data.is_standin
    assert data.X.shape == (12, 3072) and data.num_classes == 100 and data.y.dtype == torch.long
    idx = np.array(data.indices)
    assert len(set(idx.tolist())) == 12 and idx.max() < N_TRAIN
    expected = train[b"data"][idx].astype(np.float64) / 127.5 - 1.0  # same layout as the archive
    np.testing.assert_allclose(data.X.numpy(), expected, rtol=0, atol=1e-12)
    assert data.y.tolist() == [train[b"fine_labels"][i] for i in idx]
    assert float(data.X.min()) >= -1.0 and float(data.X.max()) <= 1.0
    assert data.class_names[7] == "class7" and "checksum verified" in data.note
    # pixel 0 of the green channel is column 1024: the layout is channel-major, not interleaved
    assert data.X[0, 1024] == pytest.approx(train[b"data"][idx[0], 1024] / 127.5 - 1.0)


def test_seed_selects_images_and_test_split(archive):
    path, _, test, _ = archive
    md5 = cifar.file_md5(path)
    a = hl.nets.cifar100(5, root=path, md5=md5, seed=0, device="cpu")
    b = hl.nets.cifar100(5, root=path, md5=md5, seed=1, device="cpu")
    assert a.indices != b.indices
    t = hl.nets.cifar100(N_TEST, root=path, md5=md5, split="test", device="cpu")
    assert sorted(t.y.tolist()) == sorted(test[b"fine_labels"])
    with pytest.raises(ValueError, match="n must be <= 10"):
        hl.nets.cifar100(N_TEST + 1, root=path, md5=md5, split="test", device="cpu")
    with pytest.raises(ValueError, match="split"):
        hl.nets.cifar100(2, root=path, md5=md5, split="valid", device="cpu")


def test_env_variable_and_extracted_folder(archive, monkeypatch, tmp_path):
    path, train, _, files = archive
    monkeypatch.setenv(cifar.CIFAR100_ENV, str(path))
    data = hl.nets.cifar100(4, md5=cifar.file_md5(path), device="cpu")
    assert not data.is_standin
    folder = tmp_path / "extracted" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    monkeypatch.setenv(cifar.CIFAR100_ENV, str(folder.parent))
    assert cifar.find_cifar100() == folder
    # an extracted folder is checked against the published MD5s of its pickles: this small
    # fake is refused (naming the file), not accepted as CIFAR-100
    with pytest.raises(cifar.ChecksumError, match=r"cifar-100-python/train has MD5"):
        hl.nets.cifar100(4, device="cpu")
    with pytest.raises(cifar.ChecksumError):
        hl.nets.cifar100(4, device="cpu", fallback=True)
    same = hl.nets.cifar100(4, md5=None, device="cpu")  # checks switched off: labelled so
    assert same.indices == data.indices and torch.equal(same.X, data.X)
    assert "not checksummed" in same.note
    # the root argument wins over the environment variable
    assert cifar.find_cifar100(path.parent) == path


def test_checksum_mismatch_is_an_error_not_a_fallback(archive):
    path, _, _, _ = archive
    with pytest.raises(cifar.ChecksumError, match="MD5"):
        hl.nets.cifar100(4, root=path.parent, device="cpu")  # the published MD5 is not this file's
    with pytest.raises(cifar.ChecksumError):
        hl.nets.cifar100(4, root=path.parent, md5="0" * 32, fallback=True, device="cpu")


def test_standin_when_no_data_says_so():
    data = hl.nets.cifar100(16, seed=2, device="cpu")
    assert data.is_standin and data.X.shape == (16, 3072) and data.num_classes == 100
    assert "stand-in" in data.name and "stand-in" in data.note
    assert "downloading was not enabled" in data.note
    assert abs(float(data.X.std()) - 1.0) < 0.05 and int(data.y.max()) < 100
    with pytest.raises(FileNotFoundError, match="not available"):
        hl.nets.cifar100(16, fallback=False, device="cpu")


def test_download_flag_from_env_and_failed_download(monkeypatch):
    calls = []

    def offline(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    monkeypatch.setenv(cifar.DOWNLOAD_ENV, "1")
    data = hl.nets.cifar100(8, timeout=3.0, device="cpu")
    assert calls == [(cifar.CIFAR100_URL, 3.0)]
    assert data.is_standin and "download" in data.note and "no route to host" in data.note
    assert not list(cifar.cifar100_cache_dir().glob("*"))  # nothing half-written is left


def test_download_verifies_and_caches(archive, monkeypatch):
    path, _, _, _ = archive

    def fake_urlopen(url, timeout):
        return open(path, "rb")  # a file object is a context manager with .read(), as a response

    monkeypatch.setattr(files.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(cifar.ChecksumError):
        cifar.download_cifar100()  # published MD5: this small archive does not match
    assert not list(cifar.cifar100_cache_dir().glob("*"))
    got = cifar.download_cifar100(md5=cifar.file_md5(path))
    assert got == cifar.cifar100_cache_dir() / "cifar-100-python.tar.gz"
    assert cifar.file_md5(got) == cifar.file_md5(path)
    data = hl.nets.cifar100(6, md5=cifar.file_md5(path), device="cpu")  # found in the cache now
    assert not data.is_standin


def test_unpickler_refuses_other_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"cifar-100-python/train: .*refused"):
        cifar.read_cifar100(folder, md5=None)


def test_missing_keys_and_bad_shapes(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "meta").write_bytes(_pickle_bytes({b"fine_label_names": [b"a"] * 100}))
    (folder / "train").write_bytes(_pickle_bytes({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(ValueError, match="fine_labels"):
        cifar.read_cifar100(folder, md5=None)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}
    (folder / "train").write_bytes(_pickle_bytes(bad))
    with pytest.raises(ValueError, match="3072"):
        cifar.read_cifar100(folder, md5=None)


def test_image_size_average_pools_each_channel(archive):
    path, train, _, _ = archive
    md5 = cifar.file_md5(path)
    data = hl.nets.cifar100(3, root=path, md5=md5, image_size=8, device="cpu", dtype=torch.float64)
    assert data.X.shape == (3, 192) and "8×8" in data.note
    img = train[b"data"][data.indices[0]].reshape(3, 32, 32).astype(np.float64) / 127.5 - 1.0
    # green channel, pooled pixel (row 1, column 2) = mean of the 4x4 patch rows 4-7, cols 8-11
    assert data.X[0, 64 + 1 * 8 + 2] == pytest.approx(img[1, 4:8, 8:12].mean(), abs=1e-12)
    standin = hl.nets.cifar100(3, image_size=8, device="cpu")
    assert standin.is_standin and standin.X.shape == (3, 192)
    with pytest.raises(ValueError, match="divide 32"):
        hl.nets.cifar100(3, root=path, md5=md5, image_size=5, device="cpu")


# --- where the data comes from: explicit locations, deadlines, partial and corrupt files -------


def test_explicit_location_without_data_is_an_error_not_a_standin(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(cifar.CIFAR100_ENV, str(missing))
    for fallback in (True, False):
        with pytest.raises(FileNotFoundError, match=r"HESSLIB_CIFAR100 = .*nowhere.* not exist"):
            hl.nets.cifar100(4, fallback=fallback, device="cpu")
    with pytest.raises(FileNotFoundError, match="HESSLIB_CIFAR100"):
        files.cifar100_source()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(cifar.CIFAR100_ENV, str(empty))
    with pytest.raises(FileNotFoundError, match="holds neither"):
        hl.nets.cifar100(4, device="cpu")
    monkeypatch.delenv(cifar.CIFAR100_ENV)
    with pytest.raises(FileNotFoundError, match=r"root = .*nowhere"):
        hl.nets.cifar100(4, root=missing, device="cpu")
    assert hl.nets.cifar100(4, device="cpu").is_standin  # nothing given: the labelled stand-in


def test_source_fingerprint_names_the_data_by_content(archive, monkeypatch, tmp_path):
    path, _, _, raw = archive
    assert files.cifar100_source() == "stand-in"
    assert files.cifar100_source(download=True) == "stand-in, download on"
    monkeypatch.setenv(cifar.DOWNLOAD_ENV, "1")
    assert files.cifar100_source() == "stand-in, download on"
    assert files.cifar100_source(path.parent) == f"archive md5={cifar.file_md5(path)}"
    monkeypatch.setenv(cifar.CIFAR100_ENV, str(path))
    assert files.cifar100_source() == f"archive md5={cifar.file_md5(path)}"
    folder = tmp_path / "x" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, data in raw.items():
        (folder / name).write_bytes(data)
    source = files.cifar100_source(folder.parent)
    assert source.startswith("folder train=") and cifar.file_md5(folder / "train") in source
    (folder / "train").write_bytes(raw["train"][:-1])  # different content, different source
    assert files.cifar100_source(folder.parent) != source


def test_corrupt_extracted_pickle_names_the_file(archive, tmp_path):
    _, _, _, raw = archive
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, data in raw.items():
        (folder / name).write_bytes(data)
    (folder / "train").write_bytes(raw["train"][: len(raw["train"]) // 2])
    with pytest.raises(ValueError, match=r"cifar-100-python/train is not a readable"):
        cifar.read_cifar100(folder, md5=None)
    (folder / "train").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match=r"cifar-100-python/train"):
        cifar.read_cifar100(folder, md5=None)


class _Trickle:
    """A response that hands out one byte per read, slowly, forever (a stalling server)."""

    def __init__(self, pause: float):
        self.pause = pause

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read1(self, n):
        import time

        time.sleep(self.pause)
        return b"x"


def test_download_has_a_total_deadline_and_leaves_no_part(monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: _Trickle(0.01))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"longer than 0.3 s"):
        files.download_cifar100(tmp_path, md5=None, timeout=5.0, deadline=0.3)
    assert time.monotonic() - t0 < 3  # each read was fast: only the total deadline stops it
    assert not list(tmp_path.iterdir())  # no .part left behind
    # a download that fails through the fallback path also leaves nothing
    monkeypatch.setenv(cifar.DOWNLOAD_ENV, "1")
    monkeypatch.setattr(cifar, "download_cifar100", lambda **kw: (_ for _ in ()).throw(
        TimeoutError("took longer than 600 s")))  # fmt: skip
    data = hl.nets.cifar100(3, device="cpu")
    assert data.is_standin and "TimeoutError" in data.note
    with pytest.raises(ValueError, match="deadline must be"):
        files.download_cifar100(tmp_path, deadline=0)


def test_interrupted_and_killed_downloads_leave_no_part(monkeypatch, tmp_path):
    import os
    import time

    class Interrupted(_Trickle):
        def read1(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: Interrupted(0))
    with pytest.raises(KeyboardInterrupt):
        files.download_cifar100(tmp_path, md5=None)
    assert not list(tmp_path.iterdir())
    # a SIGKILLed download leaves its .part: the next download removes it once it is too old
    # to belong to a download still running
    stale = tmp_path / ".cifar100-killed.part"
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".cifar100-running.part"
    fresh.write_bytes(b"in progress elsewhere")
    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: Interrupted(0))
    with pytest.raises(KeyboardInterrupt):
        files.download_cifar100(tmp_path, md5=None, deadline=60)
    assert not stale.exists() and fresh.exists()
