"""GPT-2's byte-level BPE: the byte<->character map, the split pattern and its two file formats."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fwdtui.errors import WeightsError

# GPT-2's pre-tokenization: contractions, words with one optional leading space, numbers,
# runs of punctuation, and whitespace (a run of spaces leaves its last space to the next word).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ENDOFTEXT = "<|endoftext|>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each of the 256 byte values to one printable character.

    Byte-level BPE vocabularies are stored as text (JSON), so every byte needs a visible stand-in.
    Bytes that are already printable Latin-1 characters ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
    themselves; the other 68 (control codes, space, DEL, NBSP, soft hyphen...) are moved in byte
    order to U+0100, U+0101, ... That is why a leading space shows up as 'Ġ' (U+0120 = 256 + 32)
    and a newline as 'Ċ' (U+010A = 256 + 10).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    byte_to_char: dict[int, str] = {b: chr(b) for b in printable}
    n_moved = 0
    for b in range(256):
        if b not in byte_to_char:
            byte_to_char[b] = chr(256 + n_moved)
            n_moved += 1
    return byte_to_char


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of `bytes_to_unicode`: stand-in character -> byte value."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_str_to_bytes(token: str) -> bytes | None:
    """A vocabulary string in GPT-2's byte-to-unicode form back to raw bytes (None if it is not one).

    >>> token_str_to_bytes("Ġcat")
    b' cat'
    """
    u2b = unicode_to_bytes()
    try:
        return bytes(u2b[c] for c in token)
    except KeyError:
        return None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WeightsError(
            f"Tokenizer file {path} is missing ({what}).",
            "Download the model again (fwdtui download NAME) or point --model at a folder that "
            "has its tokenizer files.",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise WeightsError(
            f"Tokenizer file {path} cannot be read: {err}.",
            "The file is damaged; delete it and download the model again.",
        ) from None


def read_vocab_json(path: Path) -> dict[str, int]:
    """Read `vocab.json` / `encoder.json`: token string (byte-to-unicode form) -> id."""
    text = _read_text(path, "the token -> id table")
    try:
        vocab = json.loads(text)
    except json.JSONDecodeError as err:
        raise WeightsError(
            f"Tokenizer file {path} is not valid JSON ({err.msg} at line {err.lineno}).",
            "The file is damaged or truncated; delete it and download the model again.",
        ) from None
    except (ValueError, RecursionError):  # absurdly long numbers or absurdly deep nesting
        raise WeightsError(
            f"Tokenizer file {path} is not a token -> id table (its JSON is nested or sized absurdly).",
            "The file is damaged; delete it and download the model again.",
        ) from None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise WeightsError(
            f"Tokenizer file {path} is not a token -> id table.",
            "Use the vocab.json (or encoder.json) that came with the model.",
        )
    return vocab


def read_merges_txt(path: Path) -> list[tuple[str, str]]:
    """Read `merges.txt` / `vocab.bpe`: one "a b" merge per line in rank order, after a #version line."""
    merges: list[tuple[str, str]] = []
    for line_no, line in enumerate(_read_text(path, "the merge rules").split("\n"), start=1):
        if not line or (line_no == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise WeightsError(
                f"Tokenizer file {path}, line {line_no}, is not a merge rule 'a b': {line[:40]!r}.",
                "The file is damaged; delete it and download the model again.",
            )
        merges.append((parts[0], parts[1]))
    if not merges:
        raise WeightsError(
            f"Tokenizer file {path} has no merge rules.",
            "The file is empty or truncated; delete it and download the model again.",
        )
    return merges
