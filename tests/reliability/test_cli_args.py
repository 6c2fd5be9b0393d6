"""Command-line arguments that are wrong: numbers out of range, unknown models, chapters and commands.

Every case exits 2 with `error: ...` and `  fix: ...` on stderr and nothing else; no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import assert_clear_error, run_cli, run_subprocess

BAD_NUMBERS = [
    ("generate", "-n", "-5"), ("generate", "-n", "0"), ("generate", "-n", "1000001"), ("generate", "-n", str(10**100)),
    ("generate", "-n", "abc"), ("generate", "-n", "1e3"), ("generate", "-n", ""), ("generate", "-n", "4.0"),
    ("generate", "-t", "-1"), ("generate", "-t", "nan"), ("generate", "-t", "inf"), ("generate", "-t", "1e400"),
    ("generate", "-t", "101"), ("generate", "-t", "warm"),
    ("generate", "--top-p", "0"), ("generate", "--top-p", "1.5"), ("generate", "--top-p", "nan"),
    ("generate", "--top-p", "-0.1"),
    ("generate", "--top-k", "-1"), ("generate", "--top-k", "1e9"), ("generate", "--top-k", str(10**10)),
    ("generate", "--seed", "-1"), ("generate", "--seed", str(2**64)), ("generate", "--seed", "0x10"),
    ("step", "--top", "0"), ("step", "--top", "-3"), ("step", "--top", "many"),
]


@pytest.mark.parametrize("argv", BAD_NUMBERS, ids=[" ".join(a[1:]) or "empty" for a in BAD_NUMBERS])
def test_bad_numbers(capsys, tiny_gpt2: Path, argv: tuple[str, ...]) -> None:
    command, *option = argv
    code, out, err = run_cli(capsys, command, "-m", str(tiny_gpt2), *option, "hello")
    assert_clear_error(code, out, err)
    assert option[0] in err  # names the argument that was wrong
    assert f"fwdtui {command} --help" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["generate", "-m", "gpt5", "x"], "No model called 'gpt5'"),
        (["generate", "-m", "gpt2-xl", "x"], "not downloaded yet"),  # a known name, not downloaded
        (["step", "-m", "/no/such/folder", "x"], "No model called"),
        (["tokenize", "-m", "~nobody-here/model", "x"], "No model called"),
        (["download", "gpt5"], "No model named 'gpt5'"),
        (["download", ""], "No model named ''"),
        (["download", "../../etc"], "No model named"),
        (["download", "GPT2"], "No model named 'GPT2'"),
        (["no-such-chapter"], "no chapter called 'no-such-chapter'"),
        (["no-such-chapter", "--model", "gpt2"], "no chapter called"),
        (["--model", "/no/such/model.gguf"], "No model called"),  # fails before the app takes the terminal
        (["--model", "gpt5"], "No model called 'gpt5'"),
    ],
)
def test_unknown_models_and_chapters(capsys, argv: list[str], needle: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert_clear_error(code, out, err, needle=needle)


def test_unknown_chapter_also_lists_the_commands(capsys) -> None:
    code, out, err = run_cli(capsys, "tokenise", "hello")  # a misspelt command reads as a chapter id
    assert_clear_error(code, out, err, needle="no chapter called 'tokenise'")
    assert "tokenize" in err and "fwdtui chapters" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["step"], "required: prompt"),
        (["generate"], "required: prompt"),
        (["download"], "required: name"),
        (["step", "--bogus", "x"], "unrecognized arguments: --bogus"),
        (["--bogus"], "unrecognized arguments"),
        (["models", "extra"], "unrecognized arguments: extra"),
        (["bench", "--compare", "pytorch"], "invalid choice"),
        (["transformer.journey", "another"], "unrecognized arguments: another"),
    ],
)
def test_malformed_command_lines(capsys, argv: list[str], needle: str) -> None:
    assert_clear_error(*run_cli(capsys, *argv), needle=needle)


@pytest.mark.parametrize("argv", [["generate", "-m", "evil\x1b[2J\rname", "x"], ["step", "--top", "3\r\x1b[31m", "x"],
                                  ["download", "gpt\u20282"], ["tokenize", "-m", "bad\ud800name", "x"]])
def test_echoed_arguments_cannot_drive_the_terminal(capsys, argv: list[str]) -> None:
    """An argument echoed in an error has its control characters escaped (no cursor moves, no colours)."""
    code, out, err = run_cli(capsys, *argv)
    assert_clear_error(code, out, err)
    assert not any(c in err for c in "\x1b\r\u2028") and "\ud800" not in err
    assert "\\x1b" in err or "\\u2028" in err or "\\ud800" in err


def test_help_and_version_exit_0(capsys) -> None:
    for argv in (["--help"], ["-h"], ["--version"], ["step", "--help"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0 and out and "error" not in err


def test_real_process_reports_without_traceback(tiny_gpt2: Path) -> None:
    for argv, needle in ((["generate", "-n", "-5", "x"], "out of range"), (["nosuch"], "no chapter called"),
                         (["step", "-m", "/no/such", "x"], "No model called")):
        result = run_subprocess(*argv)
        assert_clear_error(result.returncode, result.stdout, result.stderr, needle=needle)


def test_output_cut_by_a_closed_pipe(tiny_gpt2: Path) -> None:
    """`fwdtui tokenize LONG | head -1`: the reader goes away; no traceback, no complaint."""
    proc = subprocess.Popen([sys.executable, "-m", "fwdtui", "tokenize", "-m", str(tiny_gpt2), "word " * 5000],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1, 120, -13), proc.returncode  # ok, or killed by SIGPIPE; never a crash report
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


# --- hypothesis: any mix of options and values --------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

VALUES = st.one_of(st.sampled_from(["0", "-1", "1", "3", "1e3", "nan", "inf", "-inf", "0.5", "", " ", "--", "-",
                                    "999999999999999999999", "0x1f", "1_000", "\x00", "\ud800", "é"]),
                   st.text(max_size=6))
OPTIONS = ["-n", "--max-new-tokens", "-t", "--temperature", "--top-k", "--top-p", "--seed", "--top", "--json",
           "--chat", "-m", "--bogus", "-h"]


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["generate", "step", "tokenize", "models", "chapters"]),
       words=st.lists(st.one_of(st.sampled_from(OPTIONS), VALUES), max_size=6), prompt=VALUES)
def test_any_command_line(capsys, tiny_gpt2: Path, command: str, words: list[str], prompt: str) -> None:
    """Whatever the options: exit 0 (it ran), 2 (it said what was wrong, and what to do), never a traceback."""
    # -m always names the tiny model (another model would be fetched from the network)
    argv = [command, *(w if w != "-m" else "--json" for w in words), prompt]
    if command in ("generate", "step", "tokenize"):
        argv[1:1] = ["-m", str(tiny_gpt2)]
    if command == "generate":
        argv[1:1] = ["-n", "2"]  # short, whatever else comes (a later -n wins)
    capsys.readouterr()
    code, out, err = run_cli(capsys, *argv)
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in out + err
    if code == 2 and "-h" not in argv:
        assert_clear_error(code, out, err)
