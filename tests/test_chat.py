"""Chat templates without Jinja: the exact text SmolLM2 / Llama 3 / a base model is given."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from fwdtui.errors import PromptError
from fwdtui.tokenizers.bpe import build_bpe_tokenizer
from fwdtui.tokenizers.chat import (
    apply_chat_template,
    chat_format,
    default_system_prompt,
    encode_chat,
)
from fwdtui.tokenizers.gpt2 import bytes_to_unicode

# SmolLM2-135M-Instruct's template, as its GGUF stores it under tokenizer.chat_template.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# The shape of Llama 3's template (the real one is longer; these are the parts we key on).
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
)
LLAMA32_TEMPLATE = LLAMA3_TEMPLATE + "{{- 'Cutting Knowledge Date: December 2023\\n' }}"

USER_HI = [{"role": "user", "content": "Hi"}]


def _with_template(template: str | None):
    return SimpleNamespace(chat_template=template)


def test_smollm2_adds_its_default_system_prompt():
    text = apply_chat_template(_with_template(SMOLLM2_TEMPLATE), USER_HI)
    assert text == (
        f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_keeps_a_given_system_prompt_and_turns():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    text = apply_chat_template(_with_template(SMOLLM2_TEMPLATE), messages, add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
    )


def test_default_system_prompt_found_in_template():
    assert default_system_prompt(SMOLLM2_TEMPLATE) == SMOLLM2_SYSTEM
    # the same template with the newline written as a Jinja escape
    assert default_system_prompt(SMOLLM2_TEMPLATE.replace("\n", "\\n")) == SMOLLM2_SYSTEM
    plain_chatml = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content']}}{% endfor %}"
    assert default_system_prompt(plain_chatml) is None
    assert apply_chat_template(_with_template(plain_chatml), USER_HI) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_headers():
    text = apply_chat_template(_with_template(LLAMA3_TEMPLATE), [{"role": "user", "content": " Hi \n"}])
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama32_always_writes_a_dated_system_turn():
    messages = [{"role": "system", "content": "Be brief."}, *USER_HI]
    text = apply_chat_template(_with_template(LLAMA32_TEMPLATE), messages, add_generation_prompt=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    )


def test_base_model_gets_a_plain_transcript():
    hello = {"role": "assistant", "content": "Hello!"}
    messages = [{"role": "system", "content": "A chat."}, *USER_HI, hello, *USER_HI]
    assert apply_chat_template(_with_template(None), messages) == (
        "A chat.\n\nUser: Hi\nAssistant: Hello!\nUser: Hi\nAssistant:"
    )
    assert chat_format(None) == "plain"
    assert chat_format(SMOLLM2_TEMPLATE) == "chatml"
    assert chat_format(LLAMA3_TEMPLATE) == "llama3"


def test_bad_message_is_a_prompt_error():
    with pytest.raises(PromptError, match="role"):
        apply_chat_template(_with_template(SMOLLM2_TEMPLATE), [{"content": "no role"}])


def test_encode_chat_turns_template_tokens_into_single_ids():
    """The user's own text "<|im_end|>" stays text; the template's markers become control ids."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b + 2 for b in range(256)}
    tok = build_bpe_tokenizer(
        "toy", vocab, [], special_tokens={"<|im_start|>": 0, "<|im_end|>": 1}, chat_template=SMOLLM2_TEMPLATE
    )
    ids = encode_chat(tok, [{"role": "user", "content": "<|im_end|>"}])
    assert ids.count(0) == 3  # system, user, assistant turns
    assert ids.count(1) == 2  # the two closed turns; the user's "<|im_end|>" is bytes
    assert tok.decode(ids) == apply_chat_template(tok, [{"role": "user", "content": "<|im_end|>"}])
    assert ids[-len("assistant\n") - 1 :] == [0] + [b + 2 for b in b"assistant\n"]
    # encoding the joined text would have let the user's "<|im_end|>" close the turn
    assert tok.encode_with_special(tok.decode(ids)).count(1) == 3
    safe = [{"role": "user", "content": "Hi there"}]
    assert encode_chat(tok, safe) == tok.encode_with_special(apply_chat_template(tok, safe))


def _smollm2_gguf() -> Path | None:
    env = os.environ.get("FWDTUI_SMOLLM2_GGUF")
    if env:
        return Path(env) if Path(env).is_file() else None
    from fwdtui.loaders.paths import weights_dir

    found = sorted(weights_dir(create=False).rglob("SmolLM2-135M-Instruct.Q4_1.gguf"))
    return found[0] if found else None


@pytest.mark.skipif(_smollm2_gguf() is None, reason="SmolLM2 GGUF not found under weights/ or $FWDTUI_SMOLLM2_GGUF")
def test_real_smollm2_template_and_ids():
    from fwdtui.tokenizers import load_gguf_tokenizer

    tok = load_gguf_tokenizer(_smollm2_gguf())
    assert tok.chat_template == SMOLLM2_TEMPLATE
    ids = encode_chat(tok, USER_HI)
    assert ids[0] == tok.special_tokens["<|im_start|>"] == tok.bos_id
    assert ids.count(tok.eos_id) == 2  # <|im_end|> closes the system and the user turns
    assert tok.decode(ids).startswith(f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>")
    messages = [{"role": "user", "content": "What is 12+30? Answer:"}, {"role": "assistant", "content": " 42"}]
    assert encode_chat(tok, messages) == tok.encode_with_special(apply_chat_template(tok, messages))


LLAMA2_TEMPLATE = "{% if messages[0]['role'] == 'system' %}<<SYS>>{% endif %}{{ bos_token + '[INST] ' }}"
MISTRAL_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}"
ZEPHYR_TEMPLATE = "{% for m in messages %}{{ '<|user|>\n' + m['content'] + eos_token }}{% endfor %}"


def test_llama2_inst_turns_with_the_system_prompt_inside_the_first():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": " And 3+3? "}]
    assert chat_format(LLAMA2_TEMPLATE) == "inst"
    assert apply_chat_template(_with_template(LLAMA2_TEMPLATE), messages) == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]"
    )


def test_mistral_inst_turns_put_the_system_text_before_the_first_question():
    messages = [{"role": "system", "content": "Be brief."}, *USER_HI, {"role": "assistant", "content": "Hello"},
                *USER_HI]
    assert apply_chat_template(_with_template(MISTRAL_TEMPLATE), messages) == (
        "<s>[INST] Be brief.\n\nHi [/INST]Hello</s>[INST] Hi [/INST]"
    )


def test_zephyr_turns_end_in_eos():
    assert chat_format(ZEPHYR_TEMPLATE) == "zephyr"
    messages = [{"role": "system", "content": "Be brief."}, *USER_HI]
    assert apply_chat_template(_with_template(ZEPHYR_TEMPLATE), messages) == (
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    )


def test_inst_markers_become_control_ids_only_where_the_vocabulary_has_them():
    """<s> and </s> are control tokens of every SentencePiece Llama; [INST] only of Mistral v3's vocabulary."""
    from fwdtui.testing import ByteTokenizer

    tok = ByteTokenizer()
    tok.special_tokens = {"<s>": 300, "</s>": 301}
    tok.chat_template = MISTRAL_TEMPLATE
    ids = encode_chat(tok, USER_HI)
    assert ids[0] == 300 and bytes(ids[1:]).decode() == "[INST] Hi [/INST]"
    tok.special_tokens = {"<s>": 300, "</s>": 301, "[INST]": 302, "[/INST]": 303}
    assert encode_chat(tok, USER_HI) == [300, 302, *b" Hi ", 303]
