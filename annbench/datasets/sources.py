"""Finding a dataset's upstream files on this machine, and fetching the missing ones.

An input file (e.g. ``sift_base.fvecs``) is looked for, in each search folder, as
``<dir>/<folder>/<file>`` then ``<dir>/<file>``; failing that, the archive that holds it
(``sift.tar.gz``) is looked for the same way and the member is extracted into the cache
folder. Every file found is verified against :data:`~annbench.datasets.checksums.CHECKSUMS`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from annbench.core.errors import UserError
from annbench.datasets.checksums import CHECKSUMS, file_digests, mismatch
from annbench.datasets.download import DownloadError, download
from annbench.datasets.spec import DatasetSpec, Upstream

log = logging.getLogger(__name__)


def _find(directory: Path, folder: str, name: str) -> Path | None:
    for candidate in (directory / folder / name, directory / name):
        if candidate.is_file():
            return candidate
    return None


def _verified(path: Path, key: str) -> Path:
    bad = mismatch(path, CHECKSUMS.get(key, {}))
    if bad:
        raise UserError(f"file {path} is not the upstream {key} ({bad}); replace it with the published file")
    return path


def _extract(archive: Path, member: str, dest: Path) -> Path:
    """Copy one archive member to ``dest`` (temporary file, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            with tarfile.open(archive, "r:*") as t:
                src = t.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    except KeyError:
        raise UserError(f"archive {archive} has no member {member}; is it the upstream file?") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise UserError(f"archive {archive} is corrupt or truncated ({e}); remove it and fetch it again") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def locate(spec: DatasetSpec, dirs: list[Path], cache: Path) -> tuple[dict[str, Path], list[Upstream]]:
    """Paths of the inputs found in ``dirs`` (then ``cache``), and the upstream files still missing."""
    found: dict[str, Path] = {}
    missing: list[Upstream] = []
    search = [d for d in dirs if d.is_dir()] + ([cache] if cache.is_dir() else [])
    for up in spec.upstream:
        for member in up.members or (up.name,):
            name = Path(member).name
            for d in search:
                hit = _find(d, up.folder, name)
                if hit is not None:
                    found[name] = _verified(hit, f"{up.folder}/{name}")
                    break
        if all(n in found for n in up.provides):
            continue
        archive = next((a for d in search if (a := _find(d, up.folder, up.name)) is not None), None)
        if archive is None:
            missing.append(up)
            continue
        _verified(archive, up.key)
        for member in up.members:
            name = Path(member).name
            if name not in found:
                found[name] = _extract(archive, member, cache / up.folder / name)
    return found, missing


def fetch(up: Upstream, cache: Path) -> Path:
    """Download one upstream file into ``cache/<folder>/``, trying its mirrors in order."""
    if not up.urls:
        raise DownloadError(up.name, up.note or "no download URL is known")
    errors = []
    for url in up.urls:
        try:
            return download(url, cache / up.folder / up.name, CHECKSUMS.get(up.key))
        except DownloadError as e:
            errors.append(e)
            log.warning("%s", e)
    if len(errors) == 1:
        raise errors[0]
    raise DownloadError(" or ".join(e.url for e in errors), "; ".join(f"{e.url}: {e.reason}" for e in errors))


def provenance(found: dict[str, Path]) -> str:
    """``name sha256:...`` of every input file, for the dataset's attrs."""
    parts = []
    for name, path in sorted(found.items()):
        parts.append(f"{name} sha256:{file_digests(path, ('sha256',))['sha256']}")
    return "; ".join(parts)
