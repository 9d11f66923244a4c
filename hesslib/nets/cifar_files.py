r"""Where CIFAR-100 comes from: finding, downloading and checksumming its files.

The archive is looked for, in order, at

1. the ``root`` argument (a directory, or the archive file itself);
2. the environment variable ``HESSLIB_CIFAR100`` (same meaning);
3. the user cache directory: ``platformdirs.user_cache_dir("hesslib")/cifar100`` when
   platformdirs is installed, else ``$XDG_CACHE_HOME/hesslib/cifar100`` (``~/.cache/...``).

A directory may hold the archive or the extracted ``cifar-100-python/`` folder. A location
given explicitly (``root`` or ``HESSLIB_CIFAR100``) that does not exist, or holds neither, is
an error — never a silent fall back to a stand-in. The archive's MD5 is the published one
(Krizhevsky, 2009); an extracted folder's ``train``, ``test`` and ``meta`` pickles are checked
against their published MD5s (those torchvision checks). :func:`cifar100_source` names the
data a call of :func:`hesslib.nets.cifar100` would read, by checksum, without reading it —
the book build puts it in a chapter's cache key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = [
    "CIFAR100_ENV",
    "CIFAR100_MD5",
    "CIFAR100_MEMBER_MD5",
    "CIFAR100_URL",
    "DOWNLOAD_ENV",
    "ChecksumError",
    "cifar100_cache_dir",
    "cifar100_source",
    "download_cifar100",
    "download_requested",
    "file_md5",
    "find_cifar100",
    "verify_cifar100",
]

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"  # published with the archive
#: MD5s of the extracted pickles (as published in torchvision's ``CIFAR100``).
CIFAR100_MEMBER_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
CIFAR100_ENV = "HESSLIB_CIFAR100"
DOWNLOAD_ENV = "HESSLIB_DOWNLOAD"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
FOLDER_NAME = "cifar-100-python"
MEMBERS = ("train", "test", "meta")
_MD5_MEMO: dict[tuple, str] = {}  # (path, size, mtime) -> MD5, so a build hashes a file once


class ChecksumError(ValueError):
    """The archive's MD5 checksum is not the published one (corrupt or wrong file)."""


def cifar100_cache_dir() -> Path:
    """The user cache directory where a downloaded archive is kept."""
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is optional
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hesslib"
    else:
        base = Path(user_cache_dir("hesslib", appauthor=False))
    return base / "cifar100"


def file_md5(path: str | os.PathLike, *, chunk: int = 2**20) -> str:
    """Hex MD5 digest of a file, read in chunks (remembered while the file is unchanged)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MD5_MEMO:
        h = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
        _MD5_MEMO[key] = h.hexdigest()
    return _MD5_MEMO[key]


def _in_directory(cand: Path) -> Path | None:
    """The archive or extracted folder inside the directory ``cand``, else ``None``."""
    if (cand / ARCHIVE_NAME).is_file():
        return cand / ARCHIVE_NAME
    for folder in (cand / FOLDER_NAME, cand):
        if (folder / "train").is_file() and (folder / "meta").is_file():
            return folder
    return None


def find_cifar100(root: str | os.PathLike | None = None) -> Path | None:
    """The first archive or extracted folder found (see the module docstring), else ``None``.

    Returns:
        The path of ``cifar-100-python.tar.gz`` (or of an archive file given directly), or of
        an extracted ``cifar-100-python/`` folder holding ``train``, ``test`` and ``meta``;
        ``None`` when neither is given and the cache holds none.

    Raises:
        FileNotFoundError: ``root`` or ``HESSLIB_CIFAR100`` names a path that does not exist,
            or a directory with neither the archive nor the extracted folder.
    """
    env = os.environ.get(CIFAR100_ENV) or None
    given = [(what, p) for what, p in (("root", root), (CIFAR100_ENV, env)) if p is not None]
    for what, path in given:  # in order of precedence
        cand = Path(path).expanduser()
        if cand.is_file():
            return cand
        found = _in_directory(cand) if cand.is_dir() else None
        if found is None:
            state = "holds neither" if cand.is_dir() else "does not exist; it should name"
            raise FileNotFoundError(
                f"{what} = {str(cand)!r} {state} {ARCHIVE_NAME} or an extracted "
                f"{FOLDER_NAME}/ folder (unset it to use the cache or the stand-in)"
            )
        return found
    cache = cifar100_cache_dir()
    return _in_directory(cache) if cache.is_dir() else None


def verify_cifar100(source: str | os.PathLike, md5: str | None = CIFAR100_MD5) -> bool:
    """Check an archive against ``md5``, or an extracted folder against the published MD5s
    of its pickles (:data:`CIFAR100_MEMBER_MD5`). ``md5=None`` checks nothing.

    Returns:
        Whether anything was checked.

    Raises:
        ChecksumError: a file is not the published one (naming the file).
    """
    if md5 is None:
        return False
    source = Path(source)
    files = [(source, md5)] if source.is_file() else []
    files += [(source / n, m) for n, m in CIFAR100_MEMBER_MD5.items() if source.is_dir()]
    for path, want in files:
        got = file_md5(path) if path.is_file() else "missing"
        if got != want.lower():
            raise ChecksumError(
                f"{path} has MD5 {got}, expected {want}: it is not the published CIFAR-100 "
                f"file (corrupt, partial or not CIFAR-100?). Delete it, or point {CIFAR100_ENV} "
                "at a good copy."
            )
    return True


def cifar100_source(root: str | os.PathLike | None = None, *, download: bool | None = None) -> str:
    """Which data :func:`hesslib.nets.cifar100` would read, named by content, without reading
    it: ``"archive md5=…"``, ``"folder train=… test=… meta=…"`` (the files' actual MD5s) or
    ``"stand-in"`` (``"stand-in, download on"`` when a download would be tried).

    Raises:
        FileNotFoundError: as :func:`find_cifar100`.
    """
    source = find_cifar100(root)
    if source is None:
        return "stand-in, download on" if download_requested(download) else "stand-in"
    if source.is_file():
        return f"archive md5={file_md5(source)}"
    sums = [f"{n}={file_md5(source / n) if (source / n).is_file() else '-'}" for n in MEMBERS]
    return "folder " + " ".join(sums)


def download_requested(download: bool | None = None) -> bool:
    """``download`` itself, or (``None``) whether ``HESSLIB_DOWNLOAD`` is 1/true/yes/on."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _remove_stale_parts(directory: Path, older_than: float) -> None:
    """Delete ``.cifar100-*.part`` files older than ``older_than`` seconds (a killed download's)."""
    now = time.time()
    for part in directory.glob(".cifar100-*.part"):
        try:
            if now - part.stat().st_mtime > older_than:
                part.unlink()
        except OSError:
            pass


def download_cifar100(
    directory: str | os.PathLike | None = None,
    *,
    url: str = CIFAR100_URL,
    md5: str | None = CIFAR100_MD5,
    timeout: float = 20.0,
    deadline: float = 600.0,
) -> Path:
    """Download the archive into ``directory`` (default: the cache) and verify its checksum.

    The file is written under a temporary ``.part`` name and renamed only once its MD5
    matches, so an interrupted or corrupt download never lands in the cache; the ``.part``
    of a failed download is removed at once, that of a killed process by the next download.

    Args:
        directory: where to keep ``cifar-100-python.tar.gz``.
        url: the archive's address (the official Toronto URL by default).
        md5: expected checksum (``None`` skips the check — for tests only).
        timeout: seconds allowed for the connection and for each read.
        deadline: seconds allowed for the whole download (a server trickling bytes is cut).

    Returns:
        The path of the verified archive.

    Raises:
        OSError: the network or the server failed (``urllib.error.URLError``, a timeout,
            ``TimeoutError`` past the deadline).
        ChecksumError: the downloaded file is not the published archive.
    """
    directory = Path(directory) if directory is not None else cifar100_cache_dir()
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(directory, older_than=deadline + 60)
    target = directory / ARCHIVE_NAME
    fd, tmp = tempfile.mkstemp(prefix=".cifar100-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, timeout=timeout, deadline=deadline)
        verify_cifar100(Path(tmp), md5)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _fetch(url: str, out, *, timeout: float, deadline: float) -> None:
    """Copy ``url`` into ``out``: each read waits at most ``timeout`` seconds, and the
    download stops after ``deadline`` seconds in all (so within ``deadline + timeout``)."""
    stop = time.monotonic() + deadline
    with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as resp:
        read = resp.read1 if hasattr(resp, "read1") else resp.read  # read1: one socket read
        while block := read(2**20):
            out.write(block)
            if time.monotonic() > stop:
                raise TimeoutError(f"the download from {url} took longer than {deadline:g} s")
