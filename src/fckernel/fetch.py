"""Verified downloads into the cache.

Nothing unverified reaches the cache: a download streams into a temporary file,
its sha256 is compared with the expected one, and only then is it renamed to
`downloads/<sha256>`. Plain `http://` is accepted only with a checksum, because
then the transport does not matter.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fckernel.cache import TEMP_PREFIX, Cache
from fckernel.errors import FetchError, InputError

CONNECT_TIMEOUT_SECONDS = 15
# Seconds without a byte from the server; a stalled transfer fails after this.
READ_TIMEOUT_SECONDS = 30
RETRIES = 2
CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(value: str, option: str) -> str:
    """Return `value` lowercased if it is a sha256 hex digest."""
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise InputError(
            f"{option}: {value!r} is not a sha256 digest",
            "give the 64 hexadecimal digits that `sha256sum FILE` prints",
        )
    return digest


def fetch(
    url: str, cache: Cache, sha256: str | None = None, label: str = "download"
) -> tuple[Path, str]:
    """Download `url` into the cache and return (path, sha256).

    With `sha256`, a cached copy is used without network access and a download
    that does not match is rejected. Without it, only https:// is allowed.
    """
    folder = cache.folder("downloads")
    if sha256 and (folder / sha256).is_file():
        return folder / sha256, sha256
    _check_scheme(url, sha256)

    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            actual = _stream(url, handle, label)
        if sha256 and actual != sha256:
            raise FetchError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}",
                "the download is corrupt or not the file you meant; check the URL "
                "and the checksum",
            )
        target = folder / actual
        os.replace(temp, target)
        return target, actual
    finally:
        temp.unlink(missing_ok=True)


def fetch_text(url: str, label: str = "download", allow_http: bool = False) -> str:
    """Download a small text file over https, or over http when `allow_http`
    (a mirror the user configured), without caching it.
    """
    if not (allow_http and urlsplit(url).scheme == "http"):
        _check_scheme(url, None)
    try:
        with _session().get(url, timeout=_timeouts()) as response:
            response.raise_for_status()
            return response.text
    except requests.RequestException as error:
        raise _fetch_error(url, error, label) from error


def _stream(url: str, handle: object, label: str) -> str:
    digest = hashlib.sha256()
    try:
        with _session().get(url, stream=True, timeout=_timeouts()) as response:
            response.raise_for_status()
            for chunk in response.iter_content(CHUNK_BYTES):
                digest.update(chunk)
                handle.write(chunk)  # type: ignore[attr-defined]
    except requests.RequestException as error:
        raise _fetch_error(url, error, label) from error
    return digest.hexdigest()


def _check_scheme(url: str, sha256: str | None) -> None:
    try:
        scheme = urlsplit(url).scheme
        urlsplit(url).port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise InputError(f"invalid URL {url!r}: {error}", "check the URL") from error
    if scheme == "https" or (scheme == "http" and sha256):
        return
    if scheme == "http":
        raise InputError(
            f"refusing to download {url} over plain http without a checksum",
            "use an https:// URL or pass the file's sha256",
        )
    raise InputError(f"unsupported URL scheme in {url!r}", "use an https:// URL")


def _session() -> requests.Session:
    retry = Retry(
        total=RETRIES,
        read=1,
        backoff_factor=1.0,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET",),
    )
    session = requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _timeouts() -> tuple[float, float]:
    return (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)


def _fetch_error(url: str, error: requests.RequestException, label: str) -> FetchError:
    response = getattr(error, "response", None)
    if response is not None and response.status_code:
        reason = f"the server answered HTTP {response.status_code}"
    elif isinstance(error, requests.exceptions.RetryError):
        reason = f"the server kept answering with an error after {RETRIES} retries"
    elif isinstance(error, requests.Timeout) or "timed out" in str(error):
        reason = "the server did not answer in time"
    elif isinstance(error, requests.exceptions.SSLError):
        # requests raises SSLError, a ConnectionError, for a certificate it
        # cannot verify: a self-signed one, or a proxy that rewrites TLS.
        reason = "the server's TLS certificate could not be verified"
    elif isinstance(error, requests.exceptions.ChunkedEncodingError):
        reason = "the connection closed before the whole file arrived"
    elif isinstance(error, requests.ConnectionError):
        reason = "cannot connect to the server"
    else:
        reason = f"the transfer failed ({type(error).__name__})"
    return FetchError(
        f"{label} failed: {url}: {reason}",
        "check the URL and your network, or use a local file instead",
    )
