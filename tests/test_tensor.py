"""The tensor model: parallel == recurrent, causality, and the RoPE/LayerNorm conventions (docs/model.md 1-3)."""
from __future__ import annotations

import math

import pytest
import torch

from bdh_graph import BDH, BDHConfig
from bdh_graph.model.tensor import layer_norm, rope, rope_cos_sin, rope_frequencies
from helpers import test_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: a second thread only waits

CONFIGS = [
    BDHConfig(n_layer=3, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0),
    BDHConfig(n_layer=2, n_embd=24, n_head=3, mlp_internal_dim_multiplier=2, dropout=0.0, vocab_size=50),
    BDHConfig(n_layer=1, n_embd=8, n_head=1, mlp_internal_dim_multiplier=8, dropout=0.0),
]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("layer_norm_on", [True, False], ids=["LN", "normfree"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c.n_layer}d{c.n_embd}h{c.n_head}N{c.N}")
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["f64", "f32"])
def test_parallel_equals_recurrent(make_model, config, layer_norm_on, dtype, tol):
    config = config.replace(layer_norm=layer_norm_on)
    seed = test_seed(config.n_layer * 100 + config.n_embd)
    # Normfree activations grow fast with depth; keep them in a range where float32 is meaningful.
    model = make_model(config, seed, dtype=dtype, scale=15.0 if layer_norm_on else 3.0)
    idx = torch.randint(0, config.vocab_size, (2, 37))
    parallel, _ = model(idx)
    recurrent = model.forward_recurrent(idx)
    assert parallel.abs().max() > 1e-3, "degenerate model: logits are ~0"
    assert rel_err(recurrent, parallel) < tol, f"seed {seed}"


def test_recurrent_activity_is_sparse_but_alive(make_model):
    model = make_model(CONFIGS[0], 3)
    state, record = model.init_state(1), {}
    for t in torch.randint(0, 256, (12,)).tolist():
        model.step(torch.tensor([t]), state, record=record)
    x_active = (record["x"] > 0).double().mean().item()
    y_active = (record["y"] > 0).double().mean().item()
    assert 0.05 < x_active < 0.95 and 0.0 < y_active < x_active


def test_strict_causality_and_first_token_sees_nothing(make_model):
    config = CONFIGS[0]
    model = make_model(config, 11)
    idx = torch.randint(0, 256, (1, 20))
    changed = idx.clone()
    changed[0, 9] = (idx[0, 9] + 1) % 256
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[0, :9], b[0, :9])
    assert not torch.allclose(a[0, 9], b[0, 9])
    # the first token's attention output is exactly 0, in both forms
    x = torch.relu(torch.randn(1, config.n_head, 5, config.N, dtype=torch.float64))
    v = torch.randn(1, 1, 5, config.n_embd, dtype=torch.float64)
    assert torch.equal(model.attn(x, v)[0][:, :, 0], torch.zeros(1, config.n_head, config.n_embd, dtype=torch.float64))
    record = {}
    model.step(idx[:, 0], model.init_state(1), record=record)
    assert torch.count_nonzero(record["a"]) == 0


def test_rope_frequencies_pinned():
    f = rope_frequencies(4, torch.float64)
    expected = [1 / (2 * math.pi), 1 / (2 * math.pi), 2.0**-8 / (2 * math.pi), 2.0**-8 / (2 * math.pi)]
    assert torch.allclose(f, torch.tensor(expected, dtype=torch.float64), rtol=1e-15, atol=0)


def test_rope_rotates_pairs_and_wraps_phase():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    freqs = rope_frequencies(4, torch.float64)
    t = 7.0  # t * f_0 = 1.114 cycles: the phase wraps
    cos, sin = rope_cos_sin(torch.tensor(t, dtype=torch.float64), freqs)
    out = rope(v, cos, sin)
    for m, f in ((0, 1 / (2 * math.pi)), (1, 2.0**-8 / (2 * math.pi))):
        phi = 2 * math.pi * ((t * f) % 1)
        a, b = v[2 * m].item(), v[2 * m + 1].item()
        assert out[2 * m].item() == pytest.approx(a * math.cos(phi) - b * math.sin(phi), abs=1e-13)
        assert out[2 * m + 1].item() == pytest.approx(b * math.cos(phi) + a * math.sin(phi), abs=1e-13)


def test_layer_norm_population_variance():
    out = layer_norm(torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert torch.allclose(out, torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(1 + 1e-5), atol=1e-15)
    u = torch.tensor([5.0, -1.0], dtype=torch.float64)
    assert torch.equal(layer_norm(u, enabled=False), u)


def _ln2(u):
    mean = (u[0] + u[1]) / 2
    var = ((u[0] - mean) ** 2 + (u[1] - mean) ** 2) / 2
    return [(ui - mean) / math.sqrt(var + 1e-5) for ui in u]


def _mat(u, m):  # row vector u (len r) times nested-list matrix m (r x c)
    return [sum(u[i] * m[i][j] for i in range(len(u))) for j in range(len(m[0]))]


def test_hand_computed_tiny_case():
    """d = 2, N = 2, one head, one layer, two tokens, written out in scalar Python."""
    config = BDHConfig(n_layer=1, n_embd=2, n_head=1, mlp_internal_dim_multiplier=1, vocab_size=3, dropout=0.0)
    model = BDH(config).double().eval()
    Dx = [[0.9, -0.4], [0.3, 1.1]]
    Dy = [[0.5, 0.7], [-1.2, 0.8]]
    E = [[0.6, -0.3], [0.2, 0.9]]  # decoder: z = y @ E
    emb = [[1.0, -2.0], [0.5, 1.5], [2.0, 0.1]]
    head = [[1.0, -1.0, 0.5], [0.3, 0.2, -0.7]]
    with torch.no_grad():
        for param, value in ((model.encoder, [Dx]), (model.encoder_v, [Dy]), (model.decoder, E),
                             (model.embed.weight, emb), (model.lm_head, head)):
            param.copy_(torch.tensor(value, dtype=torch.float64))
    tokens = [2, 1]
    v = [_ln2(emb[t]) for t in tokens]
    x = [[max(0.0, s) for s in _mat(vt, Dx)] for vt in v]
    phi = 2 * math.pi * ((1 * (1 / (2 * math.pi))) % 1)  # token 1, pair 0: f_0 = 1/(2 pi), so phi = 1 rad
    r1 = [x[1][0] * math.cos(phi) - x[1][1] * math.sin(phi), x[1][1] * math.cos(phi) + x[1][0] * math.sin(phi)]
    score = r1[0] * x[0][0] + r1[1] * x[0][1]  # R_0 is the identity
    a = [[0.0, 0.0], [score * v[0][0], score * v[0][1]]]
    logits = []
    for t in range(2):
        y = [max(0.0, s) * xt for s, xt in zip(_mat(_ln2(a[t]) if t else a[t], Dy), x[t])]
        z = _ln2(_mat(y, E))
        out = _ln2([v[t][0] + z[0], v[t][1] + z[1]])
        logits.append(_mat(out, head))
    got, _ = model(torch.tensor([tokens]))
    assert torch.allclose(got[0], torch.tensor(logits, dtype=torch.float64), rtol=0, atol=1e-12)
    # the second token's attention output is non-zero, so the RoPE rotation of 1 rad mattered
    assert abs(score) > 0.1


def test_generate_greedy_matches_parallel_argmax(make_model):
    model = make_model(CONFIGS[0], 5)
    prompt = torch.randint(0, 256, (1, 6))
    out = model.generate(prompt, 8, top_k=1)
    seq = prompt
    for _ in range(8):
        logits, _ = model(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_generate_is_seeded(make_model):
    model = make_model(CONFIGS[0], 6)
    prompt = torch.randint(0, 256, (2, 4))
    a = model.generate(prompt, 10, temperature=1.5, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 10, temperature=1.5, generator=torch.Generator().manual_seed(1))
    c = model.generate(prompt, 10, temperature=1.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([[0, 256]]), "token id 256"),
    (torch.tensor([[-1, 3]]), "token id -1"),
    (torch.zeros(1, 0, dtype=torch.long), "empty"),
    (torch.tensor([[0.5, 1.0]]), "integer"),
    (torch.tensor([1, 2]), r"shape \(B, T\)"),
])
def test_bad_tokens_are_refused(make_model, bad, match):
    model = make_model(CONFIGS[0], 0)
    with pytest.raises((ValueError, TypeError), match=match):
        model(bad)


@pytest.mark.parametrize("field,value,match", [
    ("n_embd", 0, "n_embd must be a positive integer"),
    ("n_head", -2, "n_head must be a positive integer"),
    ("mlp_internal_dim_multiplier", 1, "must be even"),
    ("dropout", 1.5, "dropout"),
    ("n_head", 3, "divisible by n_head"),
])
def test_config_validation(field, value, match):
    kwargs = dict(n_embd=4, n_head=1, mlp_internal_dim_multiplier=2)
    kwargs[field] = value
    if field == "mlp_internal_dim_multiplier":
        kwargs.update(n_embd=5)
    with pytest.raises(ValueError, match=match):
        BDHConfig(**kwargs)


def test_config_defaults_are_the_released_ones():
    c = BDHConfig()
    sizes = (c.n_layer, c.n_embd, c.n_head, c.mlp_internal_dim_multiplier, c.vocab_size, c.dropout)
    assert sizes == (6, 256, 4, 128, 256, 0.1)
    assert c.N == 8192 and c.n_neurons == 32768 and c.layer_norm
