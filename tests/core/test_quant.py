"""Quantization in core/quant.py: float formats bit by bit, integer and NF4 grids, the GGUF blocks
against gguf's own quantizer, LLM.int8, GPTQ and AWQ against round-to-nearest, and the damage."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize as gguf_quantize

from fwdtui.core import quant as Q
from fwdtui.loaders import dequant
from fwdtui.testing import random_model


def _weights(shape=(48, 128), seed=0) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# --- float formats --------------------------------------------------------------------------------


def test_format_constants_are_the_published_ones() -> None:
    assert Q.FP16.max_value == 65504 and Q.FP16.min_normal == 2.0**-14
    assert Q.FP8_E4M3.max_value == 448 and Q.FP8_E5M2.max_value == 57344
    assert Q.BF16.epsilon == 2.0**-7 and Q.BF16.bias == 127
    assert Q.FP8_E4M3.min_subnormal == 2.0**-9


@pytest.mark.parametrize("value, fmt, code", [
    (1.0, Q.FP32, 0x3F800000), (-2.0, Q.FP16, 0xC000), (1.0, Q.BF16, 0x3F80), (0.1, Q.BF16, 0x3DCD),
    (448.0, Q.FP8_E4M3, 0x7E), (1.0, Q.FP8_E4M3, 0x38), (-1.5, Q.FP8_E5M2, 0xBE), (65504.0, Q.FP16, 0x7BFF),
])
def test_float_codes(value, fmt, code) -> None:
    assert Q.float_code(value, fmt) == code
    sign, exp, man = Q.split_code(code, fmt)
    assert len(exp) == fmt.exp_bits and len(man) == fmt.man_bits and sign == ("1" if value < 0 else "0")


def test_bf16_rounds_to_nearest_even_not_by_truncation() -> None:
    x = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20, 0.1], dtype=np.float32)
    got = Q.round_to_format(x, Q.BF16)
    # a tie goes to the even mantissa (1.0, then 1 + 2/128); just above the tie rounds up
    assert got.tolist() == [1.0, 1 + 2 / 128, 1 + 1 / 128, np.float32(0.10009765625)]


@pytest.mark.parametrize("fmt", [Q.FP8_E4M3, Q.FP8_E5M2, Q.FP16])
def test_fast_minifloat_rounding_matches_the_table_of_every_value(fmt) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-12, 6, 20000))).astype(np.float32)
    grid, codes = Q.minifloat_grid(fmt)
    by_table = np.sign(x) * grid[Q.round_to_grid(x, grid, codes)]
    assert np.array_equal(Q.round_minifloat(x, fmt), by_table.astype(np.float32))
    if fmt is Q.FP16:
        assert np.array_equal(Q.round_minifloat(x, fmt), x.astype(np.float16).astype(np.float32))


# --- integer grids, NF4 ---------------------------------------------------------------------------


def test_absmax_per_channel_uses_each_rows_own_scale() -> None:
    w = _weights()
    w[0] *= 100  # one huge row: per-tensor scales every row by it, per-channel does not
    per_tensor = Q.quantize_absmax(w, 8, "tensor")
    per_channel = Q.quantize_absmax(w, 8, "channel")
    assert per_tensor.scale.shape == (1, 1) and per_channel.scale.shape == (48, 1)
    assert np.abs(per_channel.q).max() == 127
    err_t = Q.weight_error(w[1:], per_tensor.dequantize()[1:])["rms"]
    err_c = Q.weight_error(w[1:], per_channel.dequantize()[1:])["rms"]
    assert err_c < err_t / 20
    assert np.all(np.abs(per_channel.dequantize() - w) <= per_channel.scale / 2 + 1e-7)


def test_zero_point_groups_cover_a_ragged_last_group_and_hold_zero_exactly() -> None:
    w = _weights((4, 100)) + 0.03  # not centred on zero, 100 = 64 + 36
    iq = Q.quantize_zeropoint(w, 4, "group", 64)
    assert iq.scale.shape == (4, 2) and iq.q.min() >= 0 and iq.q.max() <= 15
    assert np.all(np.abs(iq.dequantize() - w) <= np.repeat(iq.scale, 64, axis=1)[:, :100] / 2 + 1e-6)
    z = Q.quantize_zeropoint(np.zeros((2, 8), np.float32), 4, "group", 8)
    assert np.all(z.dequantize() == 0)


def test_nf4_levels_are_the_qlora_table() -> None:
    published = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0]
    np.testing.assert_allclose(Q.NF4_LEVELS, published, atol=2e-6)


def test_nf4_beats_uniform_int4_on_normal_weights() -> None:
    w = _weights((64, 256), seed=3)
    nf4 = Q.quantize_levels(w, Q.NF4_LEVELS, 64)
    uni = Q.quantize_levels(w, Q.INT4_LEVELS, 64)
    assert nf4.codes.max() <= 15 and nf4.absmax.shape == (64, 4)
    assert Q.weight_error(w, nf4.dequantize())["rms"] < 0.95 * Q.weight_error(w, uni.dequantize())["rms"]


def test_scheme_bits_per_weight() -> None:
    s = Q.SCHEMES_BY_NAME
    assert s["Q8_0"].bits_per_weight() == 8.5 and s["Q4_0"].bits_per_weight() == 4.5
    assert s["Q4_1"].bits_per_weight() == 5.0
    assert s["NF4 b64"].bits_per_weight() == 4.25
    assert s["INT4 g64"].bits_per_weight() == 4 + 20 / 64
    assert s["INT8 channel"].bits_per_weight(512) == 8 + 16 / 512


# --- GGUF blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", [T.Q8_0, T.Q4_0, T.Q4_1])
def test_legacy_gguf_blocks_are_bit_exact_with_gguf(qtype) -> None:
    x = _weights((16, 256), seed=5)
    x[3, :32] = 0.0  # an all-zero block: scale 0 must not divide by zero
    x[4, 7] = 0.9  # an outlier sets its block's scale
    ours = Q.GGUF_QUANTIZERS[qtype](x.reshape(-1))
    theirs = gguf_quantize(x, qtype).reshape(-1)
    assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)


@pytest.mark.parametrize("qtype, tol", [(T.Q8_0, 0.01), (T.Q4_0, 0.15), (T.Q4_1, 0.12), (T.Q4_K, 0.12), (T.Q6_K, 0.04)])
def test_gguf_roundtrip_through_our_dequantizers(qtype, tol) -> None:
    x = _weights((8, 512), seed=6)
    back = Q.gguf_roundtrip(x, qtype)
    raw = Q.GGUF_QUANTIZERS[qtype](x.reshape(-1))
    assert raw.size == dequant.tensor_nbytes(qtype, x.size)
    assert np.array_equal(back, dequant.dequantize(raw, qtype, x.shape))
    assert Q.weight_error(x, back)["rel"] < tol
    with pytest.raises(ValueError, match="whole"):
        Q.gguf_roundtrip(x[:, :40], qtype)


# --- LLM.int8 ----------------------------------------------------------------------------------


def test_llm_int8_keeps_outlier_features_in_fp16() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 64)).astype(np.float32)
    x[:, [5, 40]] *= 40  # two outlier features, as in large transformers
    w = _weights((32, 64), seed=8)
    out = Q.llm_int8_matmul(x, w, threshold=6.0)
    ref = x @ w.T
    assert out.outliers.tolist() == [5, 40]
    err_split = np.abs(out.y - ref).mean()
    err_plain = np.abs(out.y_plain - ref).mean()
    assert err_split < err_plain / 3


# --- GPTQ and AWQ -------------------------------------------------------------------------------------


def _calibration(n=96, n_in=64, seed=9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((n_in, n_in)) / np.sqrt(n_in)  # correlated inputs, as in a real layer
    return (rng.standard_normal((n, n_in)) @ mix * np.exp(rng.uniform(-1, 1, n_in))).astype(np.float32)


def test_gptq_beats_round_to_nearest_on_the_layer_output() -> None:
    w, x = _weights((40, 64), seed=10), _calibration()
    r = Q.gptq_quantize(w, x, bits=3, group_size=32, n_curve=8)
    assert r.gptq_error < 0.7 * r.rtn_error
    assert np.isclose(r.rtn_error, Q.output_error(x, w, r.rtn_weight))
    assert np.isclose(r.gptq_error, Q.output_error(x, w, r.q_weight))
    # both stay on a 3-bit grid per group of 32: at most 8 distinct values in each row's group
    assert max(len(np.unique(r.q_weight[i, :32])) for i in range(40)) <= 8
    assert r.curve_columns[0] == 0 and r.curve_columns[-1] == 64
    assert r.gptq_curve[-1] == pytest.approx(r.gptq_error) and r.rtn_curve[-1] == pytest.approx(r.rtn_error)
    # the first column is rounded exactly like RTN (nothing has been corrected yet)
    assert r.steps[0].column == 0
    np.testing.assert_allclose(r.q_weight[:, 0], r.rtn_weight[:, 0], atol=1e-6)


def test_gptq_lazy_blocks_give_the_same_weights_as_one_block() -> None:
    w, x = _weights((24, 64), seed=11), _calibration(seed=12)
    a = Q.gptq_quantize(w, x, bits=4, group_size=16, block=8, n_curve=2)
    b = Q.gptq_quantize(w, x, bits=4, group_size=16, block=64, n_curve=2)
    np.testing.assert_allclose(a.q_weight, b.q_weight, atol=1e-5)


def test_awq_protects_salient_channels() -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    x[:, :4] *= 30  # a few input channels carry large activations
    w = _weights((32, 64), seed=14)
    r = Q.awq_search(w, x, bits=3, group_size=32)
    assert r.errors[0] == pytest.approx(r.rtn_error)  # alpha = 0 is plain round-to-nearest
    assert r.alpha > 0 and r.awq_error < 0.8 * r.rtn_error
    assert r.scales[:4].min() > r.scales[4:].max()  # the loud channels got the biggest scales
    assert r.awq_error == pytest.approx(Q.output_error(x, w, r.q_weight), rel=1e-5)


# --- the loaded model -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_linear_names_orientation_and_inputs(family) -> None:
    model = random_model(family)
    cfg = model.config
    names = Q.linear_weight_names(cfg)
    assert len(names) == cfg.n_layer * (4 if family == "gpt2" else 7)
    trace = model.trace([1, 2, 3, 4, 5])
    for name in names:
        w = Q.weight_out_in(cfg, name, model.weights[name])
        x = Q.layer_input(trace, cfg, name)
        assert x.shape == (5, w.shape[1]), name
        assert np.array_equal(Q.weight_from_out_in(cfg, name, w), model.weights[name])
    # the MLP input times the first MLP weight is what the trace recorded before the activation
    name = Q.linear_weight_names(cfg, [1], "mlp")[0]
    w = Q.weight_out_in(cfg, name, model.weights[name])
    pre = Q.layer_input(trace, cfg, name) @ w.T
    if family == "gpt2":
        pre = pre + model.weights["h.1.mlp.c_fc.bias"]
    np.testing.assert_allclose(pre, trace["blocks.1.mlp.pre"], atol=1e-4)


def test_measure_damage_is_zero_for_fp32_and_grows_with_fewer_bits() -> None:
    model = random_model("llama", seed=1)
    ids = list(b"quantize me, please")
    names = Q.linear_weight_names(model.config)
    same = Q.measure_damage(model, ids, Q.Scheme("FP32", "float", 32, fmt="FP32"), names)
    assert same.kl.max() < 1e-9 and same.top1_agree == 1.0 and same.ppl == pytest.approx(same.ppl_ref)
    int8 = Q.measure_damage(model, ids, Q.SCHEMES_BY_NAME["INT8 channel"], names)
    int2 = Q.measure_damage(model, ids, Q.SCHEMES_BY_NAME["INT2 g64"], names)
    assert 0 < int8.kl.mean() < int2.kl.mean()
    assert int8.kl.shape == (len(ids),)
    assert int2.weight_bytes < int8.weight_bytes < model.n_params * 4
    assert int8.n_weights == sum(model.weights[n].size for n in names)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size() -> None:
    assert Q.perplexity(np.zeros((4, 10)), [1, 2, 3, 4]) == pytest.approx(10.0)
    assert np.isnan(Q.perplexity(np.zeros((1, 10)), [1]))
