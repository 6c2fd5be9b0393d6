"""llama.cpp's rope_freqs.weight (Llama 3.1+ GGUFs): read, checked, cached, and run like the HF rope scaling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from test_gguf import HEAD_DIM, VOCAB, write_tiny_gguf

from fwdtui.core import ops
from fwdtui.core.config import ModelConfig
from fwdtui.errors import ConfigError, WeightsError
from fwdtui.loaders import gguf_loader, load_path
from fwdtui.loaders.gguf_loader import cache_path, load_gguf

# head_dim 16 and theta 5e5 give wavelengths 6, 32, 167, 862 (kept), 4443 (blended), 22911... (divided by 8)
# against Llama 3's bands: below 8192/4 = 2048 kept, above 8192/1 divided, a blend between.
THETA = 500000.0
SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192}
N_CTX = 2048  # long prompts: at position 1000 the blended pair turns 0.89 rad too far when its factor is ignored


def llama3_rope_factors(head_dim: int, theta: float, scaling: dict) -> np.ndarray:
    """What llama.cpp's converter stores as rope_freqs.weight: each pair's divisor, from float32 frequencies."""
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)))
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_ctx = scaling["original_max_position_embeddings"]
    wavelen = 2 * np.pi / freqs.astype(np.float64)
    smooth = (old_ctx / wavelen - low) / (high - low)
    blended = 1 / ((1 - smooth) / factor + smooth)
    kept, stretched = wavelen < old_ctx / high, wavelen > old_ctx / low
    return np.where(kept, 1.0, np.where(stretched, factor, blended)).astype(np.float32)


FACTORS = llama3_rope_factors(HEAD_DIM, THETA, SCALING)


@pytest.fixture
def llama31(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny GGUF carrying rope_freqs.weight, as one converted from a Llama 3.1 checkpoint would."""
    path = tmp_path / "tiny-llama31.gguf"
    return path, write_tiny_gguf(path, rope_theta=THETA, n_ctx=N_CTX, rope_freqs=FACTORS)


def test_the_factors_cover_all_three_bands() -> None:
    # the fixture must exercise kept, blended and stretched pairs, or the tests below prove less
    assert FACTORS[0] == 1.0 and FACTORS[-1] == 8.0
    assert any(1.0 < f < 8.0 for f in FACTORS)


def test_inv_freq_is_the_llama3_scaled_one(llama31: tuple[Path, dict]) -> None:
    model = load_path(llama31[0])
    want = ops.rope_frequencies(HEAD_DIM, THETA, SCALING)
    np.testing.assert_allclose(model.inv_freq, want, rtol=1e-6)
    assert not np.allclose(ops.rope_frequencies(HEAD_DIM, THETA), want, rtol=1e-3)  # the factors matter here
    assert model.config.rope_freq_factors == tuple(float(f) for f in FACTORS)


def test_logits_equal_the_hf_folder_with_llama3_rope_scaling(llama31: tuple[Path, dict], tmp_path: Path) -> None:
    path, weights = llama31
    gguf_model = load_path(path)
    # The same weights (HF order, as dequantized) and config, with the scaling written the transformers way.
    config, _, _ = load_gguf(path)
    del config["rope_freq_factors"]
    config["rope_scaling"] = SCALING
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"model." + k: v for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hf_model = load_path(folder)
    assert hf_model.config.rope_scaling == SCALING and hf_model.config.rope_freq_factors is None

    ids = np.random.default_rng(0).integers(0, VOCAB, size=1200)
    want = hf_model.logits(ids)
    got = gguf_model.logits(ids)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # measured: 9e-8 (logits up to 0.36)
    # Ignoring the factors (what the loader used to do) misses by far more than that tolerance (measured: 8e-5).
    unscaled = gguf_model.variant(config=dataclasses.replace(gguf_model.config, rope_freq_factors=None))
    assert np.abs(unscaled.logits(ids) - want).max() > 1e-5


def test_factors_survive_the_cache(llama31: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = llama31
    first = load_path(path)
    assert cache_path(path).is_file()

    def no_gguf(*args: object) -> None:
        raise AssertionError("the GGUF was read again")

    monkeypatch.setattr(gguf_loader, "open_gguf", no_gguf)
    again = load_path(path)
    assert again.config == first.config
    np.testing.assert_array_equal(again.inv_freq, first.inv_freq)


def test_a_cache_from_before_the_factors_is_rebuilt(llama31: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = llama31
    config, weights, tok_meta = load_gguf(path)
    del config["rope_freq_factors"]
    with monkeypatch.context() as m:  # what the loader wrote before it read rope_freqs.weight
        m.setattr(gguf_loader, "CACHE_VERSION", "1")
        assert gguf_loader.write_cache(path, config, weights, tok_meta) is not None
    model = load_path(path)
    np.testing.assert_allclose(model.inv_freq, ops.rope_frequencies(HEAD_DIM, THETA, SCALING), rtol=1e-6)
    assert "rope_freq_factors" in gguf_loader.read_cache(path)[0]  # rewritten with them


def test_without_rope_freqs_the_plain_frequencies(tmp_path: Path) -> None:
    path = tmp_path / "plain.gguf"
    write_tiny_gguf(path, rope_theta=THETA)
    model = load_path(path)
    assert model.config.rope_freq_factors is None
    np.testing.assert_array_equal(model.inv_freq, ops.rope_frequencies(HEAD_DIM, THETA))


@pytest.mark.parametrize(("factors", "says"), [
    (np.ones(HEAD_DIM // 2 + 1), "holds 9 values, but heads of 16 dimensions rotate 8 pairs"),
    (np.ones(HEAD_DIM), "holds 16 values"),  # one per dimension instead of one per pair
    (np.r_[FACTORS[:-1], 0.0], "holds 0 for pair 7"),
    (np.r_[-8.0, FACTORS[1:]], "holds -8 for pair 0"),
    (np.r_[FACTORS[:-1], np.nan], "holds nan for pair 7"),
    (np.r_[FACTORS[:-1], np.inf], "holds inf for pair 7"),
    (np.r_[FACTORS[:-1], 1e20], "holds 1e+20 for pair 7"),
], ids=["too-long", "per-dimension", "zero", "negative", "nan", "inf", "huge"])
def test_bad_rope_freqs_refused(tmp_path: Path, factors: np.ndarray, says: str) -> None:
    path = tmp_path / "bad.gguf"
    write_tiny_gguf(path, rope_freqs=factors)
    with pytest.raises(WeightsError) as err:
        load_path(path)
    assert err.value.message.startswith("rope_freqs.weight ") and says in err.value.message
    assert not cache_path(path).exists()


def test_config_refuses_bad_factors() -> None:
    raw = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
           "intermediate_size": 96, "vocab_size": 32}  # head_dim 16: 8 pairs
    assert ModelConfig.from_hf(raw | {"rope_freq_factors": [1] * 8}).rope_freq_factors == (1.0,) * 8
    for bad in ([1.0] * 7, [1.0] * 7 + [0.0], [1.0] * 7 + [True], "8", {"0": 1.0}):
        with pytest.raises(ConfigError, match="rope_freq_factors"):
            ModelConfig.from_hf(raw | {"rope_freq_factors": bad})


def test_linear_rope_scaling_divides_every_frequency(tmp_path: Path) -> None:
    """llama.cpp's linear scaling divides positions by the factor: the same as dividing each frequency."""
    plain_path, scaled_path = tmp_path / "plain.gguf", tmp_path / "linear.gguf"
    write_tiny_gguf(plain_path, rope_theta=THETA, n_ctx=N_CTX)
    write_tiny_gguf(scaled_path, rope_theta=THETA, n_ctx=N_CTX, rope_scaling=("linear", 4.0))
    plain, scaled = load_path(plain_path), load_path(scaled_path)
    np.testing.assert_allclose(scaled.inv_freq, plain.inv_freq / 4.0, rtol=1e-12)
    # position 4p of the scaled model rotates exactly as position p of the plain one
    cos_s, sin_s = ops.rope_cos_sin(np.array([400]), scaled.inv_freq)
    cos_p, sin_p = ops.rope_cos_sin(np.array([100]), plain.inv_freq)
    np.testing.assert_allclose(cos_s, cos_p, atol=1e-6)
    np.testing.assert_allclose(sin_s, sin_p, atol=1e-6)
    # with rope_freqs too, both divide
    both = tmp_path / "both.gguf"
    write_tiny_gguf(both, rope_theta=THETA, rope_freqs=FACTORS, rope_scaling=("linear", 2.0))
    np.testing.assert_allclose(load_path(both).inv_freq, plain.inv_freq / (FACTORS * 2.0), rtol=1e-6)


@pytest.mark.parametrize(("kind", "says"), [("yarn", "'yarn' rope scaling"), ("longrope", "'longrope' rope scaling")])
def test_unsupported_rope_scaling_is_refused(tmp_path: Path, kind: str, says: str) -> None:
    path = tmp_path / f"{kind}.gguf"
    write_tiny_gguf(path, rope_scaling=(kind, 4.0))
    with pytest.raises(WeightsError) as err:
        load_path(path)
    assert says in err.value.message and "plain RoPE" in (err.value.fix or "")
    assert not cache_path(path).exists()


def test_partial_rotary_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partial.gguf"
    write_tiny_gguf(path, rope_dims=HEAD_DIM // 2)
    with pytest.raises(WeightsError) as err:
        load_path(path)
    assert "rotates 8 of each head's 16 dimensions" in err.value.message
