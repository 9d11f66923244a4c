r"""CIFAR-100 from the official python-pickle archive, with a labelled Gaussian stand-in.

Fig. 1 of arXiv 2505.02809 uses N = 128 CIFAR-100 training images (d = 3 · 32 · 32 = 3072,
C = 100 fine classes). :func:`cifar100` reads them from the archive its authors publish,
``cifar-100-python.tar.gz`` (Krizhevsky, 2009), after checking its MD5 checksum.

Where the archive is looked for, and how files are checked and downloaded:
:mod:`hesslib.nets.cifar_files`.

Nothing is downloaded unless asked — ``download=True`` or ``HESSLIB_DOWNLOAD=1``, as
torchvision's ``download=False`` default — and a download has a deadline. When no data can be had,
:func:`cifar100` returns (``fallback=True``) a Gaussian stand-in of the same shape whose
``is_standin`` flag, ``name`` and ``note`` say so and why; a chapter glues ``note`` into its
text so the rendered page states which data it used.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.checks import check_device, check_dtype, check_positive_int
from ..core.data import Dataset
from ..core.device import default_device, make_generator
from .cifar_files import (
    CIFAR100_ENV,
    CIFAR100_MD5,
    CIFAR100_URL,
    DOWNLOAD_ENV,
    FOLDER_NAME,
    ChecksumError,
    cifar100_cache_dir,
    download_cifar100,
    download_requested,
    file_md5,
    find_cifar100,
    verify_cifar100,
)

__all__ = [
    "CIFAR100_ENV",
    "CIFAR100_MD5",
    "CIFAR100_URL",
    "DOWNLOAD_ENV",
    "ChecksumError",
    "cifar100",
    "cifar100_cache_dir",
    "CifarData",
    "download_cifar100",
    "file_md5",
    "find_cifar100",
    "read_cifar100",
]

IMAGE_SHAPE = (3, 32, 32)  # channel-major rows: 1024 red, 1024 green, 1024 blue values
NUM_CLASSES = 100


@dataclass(frozen=True)
class CifarData(Dataset):
    """A :class:`~hesslib.Dataset` that records where its images came from.

    Attributes:
        is_standin: ``True`` when the images are Gaussian noise standing in for CIFAR-100.
        note: one sentence for the reader: the source of the data, or why it is a stand-in.
        indices: positions of the samples in the split (``None`` for a stand-in).
        class_names: the 100 fine label names (empty for a stand-in).
    """

    is_standin: bool = False
    note: str = ""
    indices: tuple[int, ...] | None = None
    class_names: tuple[str, ...] = ()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays (the CIFAR files hold dicts, lists, arrays)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-100 file refers to {module}.{name}: refused")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: object) -> dict:
    """The dict pickled in ``raw`` (the file ``where``), NumPy arrays only."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        if "refused" in str(err):
            raise pickle.UnpicklingError(f"{where}: {err}") from err
        raise ValueError(f"{where} is not a readable CIFAR-100 pickle (corrupt?): {err}") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ValueError(
            f"{where} is not a readable CIFAR-100 pickle (corrupt?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a CIFAR-100 file must hold a dict, got {type(obj).__name__}")
    return obj


def _read_members(source: Path, names: tuple[str, ...]) -> dict[str, dict]:
    """Unpickled ``cifar-100-python/<name>`` files from an archive or an extracted folder.

    Raises:
        ValueError: a file is missing or is not a readable pickle (naming the file).
        pickle.UnpicklingError: a file refers to objects other than NumPy arrays (refused).
    """
    out = {}
    if source.is_dir():
        for name in names:
            path = source / name
            if not path.is_file():
                raise ValueError(f"{source} has no file {name}")
            out[name] = _unpickle(path.read_bytes(), path)
        return out
    with tarfile.open(source, "r:gz") as tar:
        for name in names:
            try:
                fh = tar.extractfile(f"{FOLDER_NAME}/{name}")
            except KeyError as err:
                raise ValueError(f"{source} has no member {FOLDER_NAME}/{name}") from err
            if fh is None:
                raise ValueError(f"{source}: {FOLDER_NAME}/{name} is not a file")
            out[name] = _unpickle(fh.read(), f"{source}:{FOLDER_NAME}/{name}")
    return out


def read_cifar100(
    source: str | os.PathLike, *, split: str = "train", md5: str | None = CIFAR100_MD5
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """All images and fine labels of one split, as stored.

    Args:
        source: the archive (checked against ``md5``) or an extracted ``cifar-100-python/``
            folder (its pickles checked against their published MD5s).
        split: ``"train"`` (50 000 images) or ``"test"`` (10 000).
        md5: expected MD5 of an archive; ``None`` skips the checks (archive and folder).

    Returns:
        ``(data, labels, class_names)``: ``data`` uint8 of shape ``(n, 3072)`` in the archive's
        channel-major layout, ``labels`` int64 ``(n,)`` in ``[0, 100)``, and the 100 names.

    Raises:
        ChecksumError: the archive's checksum is wrong.
        ValueError: unknown split, or a file that is not in the CIFAR-100 format.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    source = Path(source)
    verify_cifar100(source, md5)
    files = _read_members(source, (split, "meta"))
    batch, meta = files[split], files["meta"]
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"fine_labels"], dtype=np.int64)
        names = tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"fine_label_names"]
        )
    except KeyError as err:
        raise ValueError(f"{source}: not a CIFAR-100 file (missing key {err})") from err
    d = int(np.prod(IMAGE_SHAPE))
    if data.ndim != 2 or data.shape[1] != d or labels.shape != (data.shape[0],):
        raise ValueError(
            f"{source}: data must be (n, {d}) with n labels, got {data.shape}, {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{source}: fine labels outside [0, {NUM_CLASSES})")
    return data, labels, names


def _normalise(data: np.ndarray, image_size: int, dtype: torch.dtype, device) -> torch.Tensor:
    """uint8 pixels to [-1, 1], the same affine map on each channel: ``x / 127.5 − 1``.

    This is ``Normalize(mean=0.5, std=0.5)`` per channel after scaling to [0, 1]. With
    ``image_size < 32`` each channel is then average-pooled to ``image_size²`` pixels.
    """
    X = torch.from_numpy(data.astype(np.float64)) / 127.5 - 1.0  # (n, 3072)
    if image_size != IMAGE_SHAPE[1]:
        k = IMAGE_SHAPE[1] // image_size
        imgs = X.view(-1, *IMAGE_SHAPE)  # (n, 3, 32, 32)
        X = torch.nn.functional.avg_pool2d(imgs, k).reshape(X.shape[0], -1)  # (n, 3 s²)
    return X.to(device=device, dtype=dtype)


def _check_image_size(image_size: int) -> None:
    """Raise unless ``image_size`` is a positive divisor of 32."""
    check_positive_int("image_size", image_size)
    if IMAGE_SHAPE[1] % image_size:
        raise ValueError(f"image_size must divide 32 (1, 2, 4, 8, 16, 32), got {image_size}")


def cifar100(
    n: int = 128,
    *,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool | None = None,
    fallback: bool = True,
    seed: int = 0,
    image_size: int = 32,
    md5: str | None = CIFAR100_MD5,
    timeout: float = 20.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> CifarData:
    """``n`` CIFAR-100 images, drawn without replacement, normalised to [-1, 1].

    Args:
        n: number of images (Fig. 1 of arXiv 2505.02809 uses 128).
        split: ``"train"`` or ``"test"``.
        root: a directory holding the archive / extracted folder, or the archive itself;
            overrides ``HESSLIB_CIFAR100`` and the cache.
        download: fetch the archive into the cache when it is not found. ``None`` reads the
            environment variable ``HESSLIB_DOWNLOAD`` (``1``/``true``/``yes``); default off.
        fallback: when no data can be had, return a Gaussian stand-in (labelled as such)
            instead of raising.
        seed: which images are drawn (and the stand-in's noise).
        image_size: side of the images after average pooling each channel (32 = as stored;
            8 gives d = 192, for quick runs).
        md5: expected checksum of the archive (the published one; an extracted folder's
            pickles are checked against theirs); ``None`` checks nothing.
        timeout: seconds a download may wait for the server at a time (the whole download
            has the deadline of :func:`~hesslib.nets.download_cifar100`).
        device: where ``X`` and ``y`` live (default :func:`hesslib.default_device`).
        dtype: floating dtype of ``X``.

    Returns:
        A :class:`CifarData`: ``X`` ``(n, 3 s²)``, ``s = image_size`` (default ``(n, 3072)``),
        channel-major as in the archive (a row's red values, then green, then blue), labels ``y``
        ``(n,)``, ``num_classes = 100``. Check ``is_standin``/``note`` before calling it CIFAR-100.

    Raises:
        FileNotFoundError: no data and ``fallback=False``; or ``root``/``HESSLIB_CIFAR100``
            names a location without the data (never masked by the fallback).
        ChecksumError: an archive or extracted folder was found but is not the published one
            (never masked by the fallback: a wrong file is an error, not missing data).
        ValueError: a corrupt file (the message names it).
    """
    check_positive_int("n", n)
    _check_image_size(image_size)
    check_dtype("dtype", dtype)
    device = check_device("device", device) or default_device()
    download = download_requested(download)
    source, reason = _locate(root, download=download, md5=md5, timeout=timeout)
    if source is None:
        if not fallback:
            raise FileNotFoundError(f"CIFAR-100 is not available: {reason}")
        return _standin(n, seed, image_size, reason, device, dtype)
    data, labels, names = read_cifar100(source, split=split, md5=md5)
    if n > data.shape[0]:
        raise ValueError(f"n must be <= {data.shape[0]} (the {split} split), got {n}")
    idx = torch.randperm(data.shape[0], generator=make_generator(seed))[:n].sort().values.numpy()
    X = _normalise(data[idx], image_size, dtype, device)
    y = torch.from_numpy(labels[idx]).to(device)
    checked = "checksum verified" if md5 is not None else "not checksummed"
    pooled = "" if image_size == 32 else f", average-pooled to {image_size}×{image_size}"
    note = (
        f"CIFAR-100 {split} split ({source.name}, {checked}): {n} images drawn with "
        f"seed {seed}, pixels mapped to [-1, 1] on each channel{pooled}."
    )
    name = f"CIFAR-100 ({split}, N={n}, d={X.shape[1]})"
    indices = tuple(int(i) for i in idx)
    return CifarData(X, y, NUM_CLASSES, name=name, note=note, indices=indices, class_names=names)


def _locate(root, *, download: bool, md5: str | None, timeout: float) -> tuple[Path | None, str]:
    """The archive or folder :func:`cifar100` reads, found or downloaded, else ``(None, why)``.

    Raises:
        ChecksumError: the downloaded archive is not the published one.
    """
    source = find_cifar100(root)
    if source is not None:
        return source, ""
    if not download:
        return None, (
            f"no archive was found (at the root argument, the {CIFAR100_ENV} environment "
            "variable or the user cache, hesslib.cifar100_cache_dir()) and downloading was "
            f"not enabled (download=True or {DOWNLOAD_ENV}=1)"
        )
    try:
        return download_cifar100(timeout=timeout, md5=md5), ""
    except (OSError, urllib.error.URLError) as err:  # no network, DNS, timeout, HTTP error
        detail = getattr(err, "reason", None) or err  # URLError wraps the socket error
        return None, f"the download from {CIFAR100_URL} failed ({type(err).__name__}: {detail})"


def _standin(n: int, seed: int, image_size: int, reason: str, device, dtype) -> CifarData:
    """Gaussian inputs of CIFAR-100's shape and uniform labels, named as a stand-in."""
    gen = make_generator(seed)
    d = IMAGE_SHAPE[0] * image_size**2
    X = torch.randn(n, d, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    y = torch.randint(NUM_CLASSES, (n,), generator=gen).to(device)
    note = (
        f"CIFAR-100 was not available, so this run uses a Gaussian stand-in of the same "
        f"shape ({n} × {d} inputs from N(0, 1), labels uniform on 100 classes): {reason}."
    )
    name = f"Gaussian stand-in for CIFAR-100 (N={n}, d={d})"
    return CifarData(X, y, NUM_CLASSES, name=name, is_standin=True, note=note)
