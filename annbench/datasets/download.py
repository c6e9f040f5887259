"""Resumable, checksummed downloads: ``<dest>.part`` is appended to with HTTP ``Range``
requests until complete, verified, then renamed to ``dest``. A checksum mismatch removes
the partial file; an interrupted transfer keeps it so the next attempt resumes.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from annbench.core.errors import UserError
from annbench.datasets.checksums import file_digests, mismatch

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
USER_AGENT = "annbench-dataset-downloader"


class DownloadError(UserError):
    """A download failed (network, server or checksum); the message names the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot download {url}: {reason}")
        self.url = url
        self.reason = reason


def _progress(total: int | None, initial: int, label: str):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                disable=None, leave=False)


def _open(url: str, offset: int, timeout: float):  # noqa: ANN202 - an HTTP response
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset and url.startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s)/ftp dataset mirrors


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One request: append to ``part`` from its current size. Raises on a short transfer."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to fetch: the partial file is complete
            return
        raise DownloadError(url, f"HTTP {e.code} {e.reason}") from None
    with response:
        status = getattr(response, "status", 200)
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        mode = "ab"
        if offset and status == 206:
            m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(url, f"server resumed at the wrong offset ({response.headers.get('Content-Range')})")
            log.info("resuming %s at byte %d", url, offset)
        elif offset:
            log.info("server ignored the resume request for %s; starting over", url)
            offset, mode = 0, "wb"
        expected_end = None if total is None else offset + total
        with open(part, mode) as out, _progress(expected_end, offset, part.name.removesuffix(".part")) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    size = part.stat().st_size
    if expected_end is not None and size < expected_end:
        raise ConnectionError(f"transfer interrupted at byte {size} of {expected_end}")


def download(url: str, dest: str | Path, checksums: dict[str, str] | None = None, *,
              attempts: int = 3, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (resuming a previous partial download), verify, rename.

    ``checksums`` maps ``md5`` / ``sha256`` to expected hex digests. Raises
    :class:`DownloadError` naming the URL on failure.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, timeout)
            last = None
            break
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            last = e
            if not part.exists() or part.stat().st_size == 0:
                break  # nothing arrived: the server is unreachable, retrying will not help
            log.warning("download of %s interrupted (%s); resuming (attempt %d of %d)", url, e, attempt + 1, attempts)
    if last is not None:
        reason = getattr(last, "reason", None) or last
        kept = ""
        if part.exists() and part.stat().st_size:
            kept = f"; {part.stat().st_size} bytes kept in {part}, run again to resume"
        else:
            part.unlink(missing_ok=True)
        raise DownloadError(url, f"{reason}{kept}")
    bad = mismatch(part, checksums or {})
    if bad:
        part.unlink(missing_ok=True)
        raise DownloadError(url, f"checksum mismatch ({bad}); the download was deleted")
    if not checksums:
        log.warning("no checksum recorded for %s; sha256 %s", url, file_digests(part, ("sha256",))["sha256"])
    os.replace(part, dest)
    return dest
