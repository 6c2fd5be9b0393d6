"""The `fwdtui` command on a tiny local model folder: output, exit codes, and clear errors."""

import json
import subprocess
import sys

import pytest

from fwdtui.cli import main
from fwdtui.testing import write_tiny_model_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    write_tiny_model_folder(folder, "gpt2")
    return str(folder)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    write_tiny_model_folder(folder, "llama")
    return str(folder)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tokenize_json_gives_ids_and_byte_spans(capsys, tiny):
    code, out, _ = run(capsys, "tokenize", "--model", tiny, "--json", "the cat")
    assert code == 0
    data = json.loads(out)
    # "t" + "he" (merge 2) + " cat" (merges 8, 10): ids from the tiny vocab (256 bytes, then merges in order)
    assert data["ids"] == [116, 257, 265]
    assert [(t["start"], t["end"]) for t in data["tokens"]] == [(0, 1), (1, 3), (3, 7)]


def test_tokenize_text_table(capsys, tiny):
    code, out, _ = run(capsys, "tokenize", "-m", tiny, "the cat")
    assert code == 0
    assert out.splitlines()[0].startswith("3 tokens (7 bytes, 7 characters)")
    assert "' cat'" in out


@pytest.mark.parametrize("folder", ["tiny", "tiny_llama"])
def test_generate_greedy_streams_the_argmax_tokens(capsys, folder, request):
    path = request.getfixturevalue(folder)
    from fwdtui import load_model

    model = load_model(path)
    ids = model.tokenizer.encode("the cat")
    expected = list(model.generate(ids, 6, temperature=0))
    if model.tokenizer.eos_id in expected:
        expected = expected[: expected.index(model.tokenizer.eos_id)]
    code, out, _ = run(capsys, "generate", "-m", path, "-t", "0", "-n", "6", "the cat")
    assert code == 0
    assert out == "the cat" + model.tokenizer.decode(expected) + "\n"


def test_step_prints_every_stage(capsys, tiny_llama):
    code, out, _ = run(capsys, "step", "-m", tiny_llama, "the cat sat")
    assert code == 0
    for marker in ("1 tokens", "2 embed", "3 position rotary", "4 block 0", "4 block 1", "5 norm", "6 logits",
                   "7 softmax", "8 sample"):
        assert marker in out
    assert "decoder-only" in out


def test_step_top_token_matches_the_model(capsys, tiny):
    from fwdtui import load_model

    model = load_model(tiny)
    ids = model.tokenizer.encode("the cat")
    top = int(model.logits(ids)[-1].argmax())
    code, out, _ = run(capsys, "step", "-m", tiny, "the cat")
    assert f"picks {model.tokenizer.token_bytes(top).decode('utf-8', 'replace')!r}"[:8] in out or f"(id {top})" in out
    assert f"(id {top})" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["generate", "-m", "no-such-model", "x"], "No model called 'no-such-model'"),
        (["tokenize", "-m", "/no/such/dir", "x"], "No model called"),
        (["step", "-m", "TINY", ""], "The prompt is empty"),
        (["download", "gpt5"], "No model named 'gpt5'"),
        (["no-such-chapter"], "no chapter called 'no-such-chapter'"),
    ],
)
def test_bad_input_exits_2_with_a_fix(capsys, tiny, argv, needle):
    argv = [tiny if a == "TINY" else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert "fix:" in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    "argv",
    [["generate", "-n", "-5", "x"], ["generate", "-t", "-1", "x"], ["generate", "--top-p", "0", "x"],
     ["generate", "--top-k", "abc", "x"], ["generate", "-n", "99999999999", "x"], ["bogus-sub", "--x"]],
)
def test_bad_numbers_are_argparse_errors(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_pickle_checkpoints_are_refused(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    code, _, err = run(capsys, "step", "-m", str(tmp_path), "hi")
    assert code == 2 and "never unpickles" in err


def test_prompt_longer_than_context_is_cut_with_a_notice(capsys, tiny):
    code, out, _ = run(capsys, "step", "-m", tiny, "ab " * 100)  # n_ctx is 64
    assert code == 0
    assert "were dropped" in out
    assert "1 tokens   64 tokens" in out


def test_undecodable_argv_bytes_are_replaced(tiny):
    # The shell hands Python bytes that are not UTF-8; they arrive as surrogate escapes.
    env_cmd = [sys.executable, "-m", "fwdtui", "tokenize", "-m", tiny, b"caf\xe9".decode("utf-8", "surrogateescape")]
    out = subprocess.run(env_cmd, capture_output=True, text=True, errors="replace")
    assert out.returncode == 0, out.stderr
    assert "not valid UTF-8" in out.stderr
    assert "Traceback" not in out.stderr


def test_models_lists_known_models_and_sources(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FWDTUI_WEIGHTS", str(tmp_path))
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m"} <= set(rows)
    assert not rows["gpt2"]["present"]
    assert "PyPI" in rows["smollm2-135m"]["source"]
