"""The real SmolLM2-135M-Instruct from its GGUF: logits against transformers, Paris, chat."""

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"
REFERENCE = Path(__file__).parents[2] / "src" / "fwdtui" / "references" / "smollm2-135m.npz"
pytestmark = pytest.mark.smollm2


def test_config_is_smollm2(smollm2):
    cfg = smollm2.config
    assert (cfg.family, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == ("llama", 30, 576, 9, 3, 64)
    assert cfg.vocab_size == 49152 and cfg.tie_word_embeddings


def test_logits_match_transformers_on_the_same_gguf(smollm2):
    ref = np.load(REFERENCE)
    ids = smollm2.tokenizer.encode("The capital of France is")
    assert ids == ref["input_ids"].tolist()
    last = smollm2.logits(ids)[-1]
    # Same dequantized weights, float32 both sides: differences are summation-order rounding.
    assert np.abs(last - ref["last_logits"]).max() < 2e-3
    assert np.argsort(-last)[:10].tolist() == ref["top10_ids"].tolist()


def test_greedy_answer_is_paris(smollm2):
    ref = np.load(REFERENCE)
    ids = smollm2.tokenizer.encode("The capital of France is")
    out = list(smollm2.generate(ids, 8, temperature=0))
    assert out == ref["greedy_ids"].tolist()
    assert smollm2.tokenizer.decode(out).startswith(" Paris")


def test_chat_template_answers(smollm2):
    from fwdtui.tokenizers.chat import apply_chat_template

    text = apply_chat_template(smollm2.tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    ids = smollm2.tokenizer.encode_with_special(text)
    assert ids[0] == smollm2.tokenizer.special_tokens["<|im_start|>"]
    out = list(smollm2.generate(ids, 12, temperature=0))
    assert "Paris" in smollm2.tokenizer.decode(out)


def test_tokenizer_matches_reference_on_awkward_text(smollm2):
    rows = json.loads((FIXTURES / "smollm2_tokenizer_reference.json").read_text())
    assert len(rows) >= 20
    for row in rows:
        assert smollm2.tokenizer.encode(row["text"]) == row["ids"], row["text"]
        assert smollm2.tokenizer.decode(row["ids"]) == row["text"]


def test_shipped_reference_is_found_and_matches(smollm2, capsys):
    from fwdtui.cli import main
    from fwdtui.core.reference import check

    result = check(smollm2)
    assert result is not None and result.reference.name == "smollm2-135m"
    assert result.ok and result.same_top10 and result.max_abs_diff < 2e-3
    assert smollm2.tokenizer.decode([result.our_top]) == " Paris"
    assert main(["check", "--model", "smollm2-135m"]) == 0
    assert "' Paris'" in capsys.readouterr().out
