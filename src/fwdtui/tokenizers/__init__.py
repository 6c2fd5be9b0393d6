"""Tokenizers: read a model folder's or a GGUF file's tokenizer (byte-level BPE, or SentencePiece from a GGUF)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fwdtui.errors import WeightsError
from fwdtui.tokenizers.bpe import (
    SMOLLM_PATTERN,
    BPETokenizer,
    build_bpe_tokenizer,
    from_gguf_metadata,
    pattern_for_pre,
)
from fwdtui.tokenizers.gpt2 import ENDOFTEXT, GPT2_PATTERN, read_merges_txt, read_vocab_json
from fwdtui.tokenizers.spm import SentencePieceTokenizer
from fwdtui.tokenizers.spm import from_gguf_metadata as spm_from_gguf_metadata

__all__ = [
    "fragment_text",
    "text_pieces",
    "BPETokenizer",
    "SentencePieceTokenizer",
    "from_gguf_metadata",
    "load_gguf_tokenizer",
    "load_tokenizer",
    "pattern_for_pre",
]

_FIX_REDOWNLOAD = "Download the model again (fwdtui download NAME), or copy its tokenizer files into the folder."

# What a SentencePiece GGUF tokenizer is built from: our name -> its `tokenizer.ggml.<key>` (the
# names gguf_loader.tokenizer_meta uses, so the loader's cached data builds the same tokenizer).
_SPM_KEYS = {
    "tokens": "tokens",
    "scores": "scores",
    "token_types": "token_type",
    "bos_id": "bos_token_id",
    "eos_id": "eos_token_id",
    "unk_id": "unknown_token_id",
    "pad_id": "padding_token_id",
    "add_bos_token": "add_bos_token",
    "add_eos_token": "add_eos_token",
    "add_space_prefix": "add_space_prefix",
}


def fragment_text(tokenizer: Any, ids: Any) -> str:
    """The text of part of a sequence (one token, or generated tokens after a prompt), its spaces kept.

    `decode` is for whole texts: a SentencePiece tokenizer drops the space it put in front of the text,
    which would eat the space of " Paris" decoded on its own. Bytes first, so every tokenizer agrees.
    """
    return tokenizer.decode_bytes([int(i) for i in ids]).decode("utf-8", errors="replace")


def text_pieces(tokenizer: Any, ids: Any) -> list[bytes]:
    """Each token's bytes as they sit in the encoded text: the same as `token_bytes`, except that the
    space a SentencePiece tokenizer puts in front of the whole text is not in the text, so it is taken
    off the first piece. Joined, they are the text's UTF-8 (byte offsets come from these)."""
    pieces = [tokenizer.token_bytes(int(i)) for i in ids]
    if pieces and getattr(tokenizer, "add_space_prefix", False) and pieces[0][:1] == b" ":
        pieces[0] = pieces[0][1:]
    return pieces


def load_tokenizer(folder: str | Path) -> BPETokenizer:
    """The tokenizer of a model folder, from whichever files it has, best first:

    `tokenizer.json` (Hugging Face fast tokenizer), `vocab.json` + `merges.txt` (Hugging Face
    GPT-2), or `encoder.json` + `vocab.bpe` (OpenAI's original GPT-2 release).
    `tokenizer_config.json` (or `chat_template.jinja`) adds the chat template and bos/eos.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder} is not a folder.", "Give the model's folder (the one with config.json).")
    extras = _read_tokenizer_config(folder)
    if (folder / "tokenizer.json").is_file():
        return _from_tokenizer_json(folder / "tokenizer.json", extras)
    for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if (folder / vocab_name).is_file() or (folder / merges_name).is_file():
            vocab = read_vocab_json(folder / vocab_name)
            merges = read_merges_txt(folder / merges_name)
            return _finish(folder.name, vocab, merges, GPT2_PATTERN, {}, extras, str(folder / vocab_name))
    raise WeightsError(
        f"{folder} has no tokenizer files (tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe).",
        _FIX_REDOWNLOAD,
    )


def _finish(
    name: str,
    vocab: dict[str, int],
    merges: list[tuple[str, str]],
    pattern: str,
    special: dict[str, int],
    extras: dict[str, Any],
    source: str,
    *,
    pre: str | None = None,
    warning: str | None = None,
    normalizer: str | None = None,
) -> BPETokenizer:
    # "<|endoftext|>" sits in GPT-2's vocab.json with no merge making it: a special token
    if ENDOFTEXT in vocab and ENDOFTEXT not in special:
        special = {**special, ENDOFTEXT: vocab[ENDOFTEXT]}
    made = {a + b for a, b in merges}  # an added token that a merge also makes stays ordinary
    special = {t: i for t, i in special.items() if t not in made}
    everything = {**vocab, **special}

    def id_of(token: Any) -> int | None:
        if isinstance(token, dict):  # {"content": "<|im_end|>", ...} in some configs
            token = token.get("content")
        return everything.get(token) if isinstance(token, str) else None

    bos_id = id_of(extras.get("bos_token"))
    eos_id = id_of(extras.get("eos_token"))
    if eos_id is None and ENDOFTEXT in everything:  # GPT-2: one token starts and ends documents
        eos_id = everything[ENDOFTEXT]
        bos_id = eos_id if bos_id is None else bos_id
    return build_bpe_tokenizer(
        name,
        {t: i for t, i in vocab.items() if t not in special},
        merges,
        pattern,
        special,
        bos_id=bos_id,
        eos_id=eos_id,
        chat_template=extras.get("chat_template"),
        pre=pre,
        warning=warning,
        source=source,
        normalizer=normalizer,
        add_bos=bool(extras.get("add_bos_token")) and bos_id is not None,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"Tokenizer file {path} is missing.", _FIX_REDOWNLOAD) from None
    except (OSError, UnicodeDecodeError) as err:
        raise WeightsError(f"Tokenizer file {path} cannot be read: {err}.", _FIX_REDOWNLOAD) from None
    except json.JSONDecodeError as err:
        raise WeightsError(
            f"Tokenizer file {path} is not valid JSON ({err.msg} at line {err.lineno}).",
            "The file is damaged or truncated: delete it, then download the model again (fwdtui download NAME).",
        ) from None
    except (ValueError, RecursionError):  # absurdly long numbers or absurdly deep nesting
        raise WeightsError(
            f"Tokenizer file {path} is not a tokenizer file (its JSON is nested or sized absurdly).",
            "The file is damaged: delete it, then download the model again (fwdtui download NAME).",
        ) from None


def _read_tokenizer_config(folder: Path) -> dict[str, Any]:
    """bos/eos token names and the chat template, from tokenizer_config.json (if any)."""
    extras: dict[str, Any] = {}
    path = folder / "tokenizer_config.json"
    if path.is_file():
        config = _read_json(path)
        if isinstance(config, dict):
            extras = {k: config.get(k) for k in ("bos_token", "eos_token", "chat_template", "add_bos_token")}
    template = extras.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": "..."}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        extras["chat_template"] = named.get("default") or next(iter(named.values()), None)
    jinja = folder / "chat_template.jinja"  # newer hub repos keep the template in its own file
    if not extras.get("chat_template") and jinja.is_file():
        extras["chat_template"] = jinja.read_text(encoding="utf-8")
    return extras


def _from_tokenizer_json(path: Path, extras: dict[str, Any]) -> BPETokenizer:
    """A Hugging Face fast tokenizer file whose model is byte-level BPE."""
    data = _read_json(path)
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or "vocab" not in model:
        kind = model.get("type") if isinstance(model, dict) else None
        raise WeightsError(
            f"{path} is not a BPE tokenizer (model type {kind!r}).",
            "fwdtui reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, SmolLM2); use one of those models.",
        )
    merges: list[tuple[str, str]] = []
    for i, rule in enumerate(model.get("merges") or []):
        # older files store "a b", newer ones ["a", "b"]
        pair = rule.split(" ") if isinstance(rule, str) else rule
        if not isinstance(pair, list) or len(pair) != 2:
            raise WeightsError(f"{path}: merge rule {i} ({rule!r}) is not a pair.", _FIX_REDOWNLOAD)
        merges.append((pair[0], pair[1]))
    special = {
        t["content"]: t["id"]
        for t in data.get("added_tokens") or []
        if isinstance(t, dict) and isinstance(t.get("content"), str) and isinstance(t.get("id"), int)
    }
    pattern, pre, warning = _pattern_from_pre_tokenizer(data.get("pre_tokenizer"), path)
    normalizer = data.get("normalizer")
    norm_name = None
    if isinstance(normalizer, dict):
        if normalizer.get("type") in ("NFC", "NFD", "NFKC", "NFKD"):
            norm_name = normalizer["type"]
        else:
            warning = warning or f"Normalizer {normalizer.get('type')!r} of {path.name} is not applied."
    if extras.get("add_bos_token") is None:
        extras["add_bos_token"] = _post_processor_adds_bos(data.get("post_processor"))
    return _finish(
        path.parent.name, model["vocab"], merges, pattern, special, extras, str(path),
        pre=pre, warning=warning, normalizer=norm_name,
    )


def _post_processor_adds_bos(post: Any) -> bool:
    """Whether tokenizer.json's post-processor puts a special token before every text (Llama 3)."""
    steps = post.get("processors", []) if isinstance(post, dict) and post.get("type") == "Sequence" else [post]
    for step in steps:
        if isinstance(step, dict) and step.get("type") == "TemplateProcessing":
            single = step.get("single") or []
            return bool(single) and isinstance(single[0], dict) and "SpecialToken" in single[0]
    return False


def _pattern_from_pre_tokenizer(pre_tok: Any, path: Path) -> tuple[str, str | None, str | None]:
    """tokenizer.json's pre_tokenizer -> (one split regex, a name for it, a warning if guessed).

    The shapes real byte-level models use: a lone ByteLevel (GPT-2's regex), Split(regex) then
    ByteLevel without its own regex (Llama 3, Qwen2), Digits(individual) then ByteLevel (SmolLM2).
    """
    is_sequence = isinstance(pre_tok, dict) and pre_tok.get("type") == "Sequence"
    steps = pre_tok.get("pretokenizers", []) if is_sequence else [pre_tok]
    types = [s.get("type") if isinstance(s, dict) else None for s in steps]
    if "ByteLevel" not in types:
        raise WeightsError(
            f"{path} is not a byte-level tokenizer (pre-tokenizer {types}).",
            "fwdtui reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, SmolLM2); use one of those models.",
        )
    byte_level = steps[types.index("ByteLevel")]
    own_regex = byte_level.get("use_regex", True)
    others = [s for s in steps if s.get("type") != "ByteLevel"]
    warning = None
    if byte_level.get("add_prefix_space"):
        warning = f"{path.name} adds a space before the text; fwdtui does not, so the first id may differ."
    if not others and own_regex:
        return GPT2_PATTERN, "gpt2", warning
    if (
        len(others) == 1
        and others[0].get("type") == "Digits"
        and others[0].get("individual_digits")
        and own_regex
    ):
        return SMOLLM_PATTERN, "smollm", warning
    if len(others) == 1 and others[0].get("type") == "Split" and not own_regex:
        pattern = others[0].get("pattern", {})
        if isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str):
            return pattern["Regex"], None, warning
    return GPT2_PATTERN, None, (
        f"Pre-tokenizer {types} of {path.name} is not one fwdtui knows: using GPT-2's split, "
        "so some ids may differ from the model's own tokenizer."
    )


def load_gguf_tokenizer(path: str | Path | Any, name: str | None = None) -> BPETokenizer | SentencePieceTokenizer:
    """The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.

    `tokenizer.ggml.model` says which: "gpt2" is byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2),
    "llama" is SentencePiece (Llama 2, TinyLlama, Mistral 7B, CodeLlama).

    `path` may also be an open `gguf.GGUFReader` (opening a file is the slow part).
    """
    import gguf  # only needed here; GGUF is one of two ways in

    if isinstance(path, gguf.GGUFReader):
        reader, path = path, Path(getattr(path.data, "filename", None) or "model.gguf")
    else:
        path = Path(path)
        try:
            reader = gguf.GGUFReader(path)
        except FileNotFoundError:
            raise WeightsError(f"{path} does not exist.", "Check the path to the .gguf file.") from None
        except Exception as err:  # the reader raises plain ValueError/struct errors on a bad file
            raise WeightsError(
                f"{path} is not a readable GGUF file: {err}.", "Download the file again."
            ) from None

    def value(key: str, default: Any = None) -> Any:
        field = reader.fields.get(key)
        return default if field is None else field.contents()

    model = value("tokenizer.ggml.model")
    if model == "llama":
        meta = {ours: value(f"tokenizer.ggml.{key}") for ours, key in _SPM_KEYS.items()}
        meta["chat_template"] = value("tokenizer.chat_template")
        return spm_from_gguf_metadata(meta, name or path.stem)
    if model != "gpt2":
        raise WeightsError(
            f"{path.name} has a {model!r} tokenizer; fwdtui reads byte-level BPE ('gpt2') and SentencePiece "
            "('llama') tokenizers.",
            "Use a GGUF of a Llama 2, Mistral, GPT-2, Llama 3, Qwen2 or SmolLM2 model.",
        )
    tokens, merges = value("tokenizer.ggml.tokens"), value("tokenizer.ggml.merges")
    if not tokens or not merges:
        raise WeightsError(f"{path.name} has no tokenizer.ggml.tokens/merges.", "Download the file again.")
    return from_gguf_metadata(
        tokens,
        merges,
        value("tokenizer.ggml.token_type"),
        value("tokenizer.ggml.pre"),
        value("tokenizer.ggml.bos_token_id"),
        value("tokenizer.ggml.eos_token_id"),
        value("tokenizer.chat_template"),
        name or path.stem,
        add_bos=bool(value("tokenizer.ggml.add_bos_token", False)),
    )
