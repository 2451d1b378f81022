"""Finding, downloading and unpacking dataset files: the parts every loader shares.

Nothing here is run unless a loader needs files. Downloads happen only when the caller asks
(``download=True``); each file is checked against its published MD5 before it is used, written
atomically (``.part`` then rename), and archives are unpacked member by member, refusing any
member that is not a regular file below the expected folder (no links, no ``..``).
"""

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["DatasetError", "resolve_root", "one_line", "md5sum", "fetch", "extract", "open_maybe_gz",
           "find_file", "DEFAULT_ROOT_ENV"]

DEFAULT_ROOT_ENV = "SPIKEFORGE_DATA_ROOT"
_DEFAULT_ROOT = Path("~/.cache/spikeforge/datasets")


class DatasetError(ValueError):
    """A dataset cannot be loaded: missing or malformed files, bad arguments, failed download."""


def one_line(text):
    """Collapse whitespace (exception texts may hold newlines) so errors stay on one line."""
    return " ".join(str(text).split())


def resolve_root(data_root):
    """``data_root``, else ``$SPIKEFORGE_DATA_ROOT``, else ``~/.cache/spikeforge/datasets``."""
    if data_root is None:
        data_root = os.environ.get(DEFAULT_ROOT_ENV) or _DEFAULT_ROOT
    return Path(data_root).expanduser()


def md5sum(path):
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_maybe_gz(path):
    """Open ``path`` for binary reading, through gzip when its name ends in ``.gz``."""
    path = Path(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def find_file(dirs, name):
    """The first of ``dir/name`` or ``dir/name.gz`` that exists over ``dirs``, else None."""
    for d in dirs:
        for candidate in (d / name, d / (name + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def fetch(urls, dest, md5, what):
    """Make ``dest`` a verified copy of the file at one of ``urls`` (tried in order).

    An existing ``dest`` with the right checksum is kept (so a file put there by hand is
    used as is). Raises :class:`DatasetError` in one line if no URL gives the right file.
    """
    dest = Path(dest)
    if dest.is_file():
        got = md5sum(dest)
        if got == md5:
            return dest
        raise DatasetError(f"{what}: {dest} has MD5 {got}, expected {md5}; delete it and download again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
            got = md5sum(tmp)
            if got != md5:
                problems.append(f"{url} gave a file with MD5 {got}, expected {md5}")
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            problems.append(f"{url}: {reason}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DatasetError(one_line(
        f"{what}: cannot download {dest.name} ({'; '.join(problems)}); no network here? download it by "
        f"hand from {urls[0]} and put it at {dest}, then run again with download=True (--download) to "
        f"check and unpack it"))


def _members(archive):
    """(name, kind, open()) for each member of a .tar.gz or .zip ``archive``; kind: file, dir or other."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                # A zip entry made from a symbolic link carries S_IFLNK in its Unix mode bits.
                link = (info.external_attr >> 16) & 0o170000 == 0o120000
                kind = "dir" if info.is_dir() else "other" if link else "file"
                yield info.filename, kind, lambda info=info: z.open(info)
    else:
        with tarfile.open(archive, "r:*") as t:
            for m in t:
                kind = "file" if m.isfile() else "dir" if m.isdir() else "other"
                yield m.name, kind, lambda m=m: t.extractfile(m)


def extract(archive, dest_dir, top, what):
    """Unpack the members of ``archive`` that lie below folder ``top`` into ``dest_dir/top``.

    The folder appears whole or not at all (unpacked into a temporary folder, then renamed).
    Links, devices and paths that would leave ``top`` are refused.
    """
    dest_dir = Path(dest_dir)
    final = dest_dir / top
    if final.exists():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dest_dir))
    found = 0
    try:
        for name, kind, open_member in _members(archive):
            parts = PurePosixPath(name).parts
            if not parts or parts[0] != top or len(parts) == 1 or kind == "dir":
                continue
            if kind != "file":
                raise DatasetError(f"{what}: {archive} holds {name!r}, which is not a regular file; refused")
            if any(p in ("..", "") for p in parts) or PurePosixPath(name).is_absolute():
                raise DatasetError(f"{what}: {archive} holds the unsafe path {name!r}; refused")
            target = tmp.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            found += 1
        if not found:
            raise DatasetError(f"{what}: {archive} has no files under {top}/; is it the right archive?")
        os.replace(tmp, final)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DatasetError(one_line(f"{what}: cannot unpack {archive}: {e}")) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
