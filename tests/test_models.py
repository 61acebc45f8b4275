"""The model registry and the recurrent stack, checked against torch.nn cells in a naive loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from charrnn import models
from charrnn.config import ModelConfig
from charrnn.errors import UsageError
from charrnn.models.rnn import RNNStack, select_state

CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
CONFIGS = [
    ModelConfig(embed_size=8, hidden_size=12),
    ModelConfig(embed_size=8, hidden_size=12, num_layers=3),
    ModelConfig(embed_size=12, hidden_size=12, num_layers=3, residual=True, tie_weights=True),
]


@pytest.mark.parametrize("name", list(models.MODELS))
@pytest.mark.parametrize("config", CONFIGS)
def test_parameter_formula_matches_model(name, config):
    model = models.build(name, config, vocab_size=37, source_vocab_size=41)
    assert models.count_parameters(model) == models.expected_parameters(name, config, 37, 41)


def _naive(stack: RNNStack, x: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The same stack, one torch.nn cell step at a time, weights copied over."""
    B, T, _ = x.shape
    params = dict(stack.named_parameters())
    layer_input = x
    for layer in range(config.num_layers):
        if config.residual:
            prefix, suffix = f"layers.{layer}.", "_l0"
        else:
            prefix, suffix = "rnn.", f"_l{layer}"
        size = layer_input.shape[-1]
        kwargs = {"nonlinearity": config.nonlinearity} if config.cell == "rnn" else {}
        cell = CELLS[config.cell](size, config.hidden_size, **kwargs)
        with torch.no_grad():
            for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, part).copy_(params[f"{prefix}{part}{suffix}"])
        h = torch.zeros(B, config.hidden_size)
        c = torch.zeros(B, config.hidden_size)
        outputs = []
        for t in range(T):
            if config.cell == "lstm":
                h, c = cell(layer_input[:, t], (h, c))
            else:
                h = cell(layer_input[:, t], h)
            outputs.append(h)
        out = torch.stack(outputs, dim=1)
        layer_input = out + layer_input if (config.residual and layer > 0) else out
    return layer_input


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("residual", [False, True])
def test_stack_matches_torch_cells(cell, residual):
    torch.manual_seed(0)
    config = ModelConfig(
        cell=cell,
        hidden_size=10,
        num_layers=3,
        residual=residual,
        nonlinearity="relu" if cell == "rnn" else "tanh",
    )
    stack = RNNStack(10, config).eval()  # no dropout between layers
    x = torch.randn(3, 7, 10)
    out, _ = stack(x)
    torch.testing.assert_close(out, _naive(stack, x, config), rtol=1e-5, atol=1e-5)


LM_MODELS = [name for name, entry in models.MODELS.items() if entry.kind == "lm"]


@pytest.mark.parametrize("name", LM_MODELS)
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("onednn", [False, True])
def test_step_by_step_equals_full_forward(name, residual, onednn, monkeypatch):
    from charrnn.models import packed

    # with onednn, every decoding product takes the packed oneDNN path, however small
    monkeypatch.setattr(packed, "pays", lambda weights, rows: onednn)
    torch.manual_seed(1)
    config = ModelConfig(embed_size=16, hidden_size=16, num_layers=2, residual=residual)
    model = models.build(name, config, vocab_size=11).eval()
    ids = torch.randint(0, 11, (2, 9))
    full, _ = model(ids)
    state = None
    with torch.no_grad():
        for t in range(9):
            logits, state = model.step(ids[:, t], state)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)
    # carrying the state across two calls equals one call
    first, mid = model(ids[:, :4])
    second, _ = model(ids[:, 4:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=1e-5, atol=1e-5)


def test_select_state_reorders_rows():
    model = models.build("lstm", ModelConfig(embed_size=4, hidden_size=5, num_layers=2), 7).eval()
    _, state = model(torch.randint(0, 7, (3, 4)))
    picked = select_state(state, torch.tensor([2, 0, 0]))
    assert torch.equal(picked[0][:, 0], state[0][:, 2]) and torch.equal(
        picked[1][:, 2], state[1][:, 0]
    )


def test_tied_weights_share_storage_and_mismatch_is_an_error():
    model = models.build("gru", ModelConfig(embed_size=8, hidden_size=8, tie_weights=True), 9)
    assert model.head.weight is model.embed.weight
    with pytest.raises(UsageError, match="--tie-weights"):
        models.build("gru", ModelConfig(embed_size=4, hidden_size=8, tie_weights=True), 9)


def test_lstm_forget_gate_bias_starts_open():
    model = models.build("lstm", ModelConfig(embed_size=4, hidden_size=6), 9)
    bias = model.rnn.rnn.bias_ih_l0
    assert torch.all(bias[6:12] == 1.0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(hidden_size=0),
        dict(num_layers=0),
        dict(dropout=1.0),
        dict(embed_dropout=-0.1),
        dict(nonlinearity="sigmoid"),
    ],
)
def test_config_ranges(bad):
    with pytest.raises(UsageError):
        ModelConfig(**bad).check()


def test_unknown_model_lists_choices():
    with pytest.raises(UsageError, match="lstm"):
        models.spec("transformer")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_padding_changes_nothing(cell, residual, bidirectional):
    torch.manual_seed(2)
    config = ModelConfig(cell=cell, hidden_size=6, num_layers=2, residual=residual)
    stack = RNNStack(5, config, bidirectional=bidirectional).eval()
    lengths = torch.tensor([4, 7, 1])
    x = torch.randn(3, 7, 5)
    out, state = stack(x, lengths=lengths)
    for row, n in enumerate(lengths.tolist()):
        alone, alone_state = stack(x[row : row + 1, :n])
        torch.testing.assert_close(out[row, :n], alone[0], rtol=1e-5, atol=1e-5)
        assert torch.all(out[row, n:] == 0)
        for s, a in zip(state, alone_state, strict=True):
            torch.testing.assert_close(s[:, row], a[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "cell,nonlinearity", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")]
)
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("rows", [1, 5])
def test_packed_decoding_step_equals_cell_kernels(cell, nonlinearity, residual, rows):
    from charrnn.models import packed

    torch.manual_seed(3)
    config = ModelConfig(
        cell=cell, hidden_size=24, num_layers=2, residual=residual, nonlinearity=nonlinearity
    )
    stack = RNNStack(24, config).eval()
    x = torch.randn(rows, 24)
    state = tuple(torch.randn(2, rows, 24) for _ in range(2 if cell == "lstm" else 1))
    layers = packed.pack(stack.rnn_kind, stack.layer_weights())
    with torch.no_grad():
        assert packed.usable(x)
        inp, fast_state = x, [[] for _ in state]
        for i, layer in enumerate(layers):  # the packed layers, whatever the batch size
            h, c = layer.step(inp, state[0][i], state[1][i] if cell == "lstm" else None)
            fast_state[0].append(h)
            if c is not None:
                fast_state[1].append(c)
            inp = h + inp if (residual and i > 0) else h
        via_stack, _ = stack.step(x, state)  # the packed path where it pays
    cells_out, cells_state = stack.step(x, state)  # gradients on: the cell kernels
    torch.testing.assert_close(inp, cells_out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(via_stack, cells_out.detach(), rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_state, cells_state, strict=True):
        if a:
            torch.testing.assert_close(torch.stack(a), b.detach(), rtol=1e-5, atol=1e-5)


def test_packed_path_is_chosen_where_it_pays():
    from charrnn.models import packed

    big = [[torch.zeros(3072, 64), torch.zeros(3072, 768)]]  # an LSTM of 768 units
    small = [[torch.zeros(1024, 64), torch.zeros(1024, 256)]]  # 256 units
    tiny = [[torch.zeros(512, 64), torch.zeros(512, 128)]]  # 128 units
    assert packed.worth_it("lstm", 1, big) and not packed.worth_it("lstm", 1, small)
    assert packed.worth_it("lstm", 5, small) and not packed.worth_it("lstm", 5, tiny)
    gru_big = [[torch.zeros(2304, 64), torch.zeros(2304, 768)]]
    gru_mid = [[torch.zeros(1536, 64), torch.zeros(1536, 512)]]
    assert packed.worth_it("gru", 1, gru_big) and not packed.worth_it("gru", 1, gru_mid)
    assert packed.worth_it("gru", 2, gru_mid)
    # an output layer over 69 characters (768 units) is faster in torch's kernel at any
    # batch; over 512 BPE tokens oneDNN pays from two rows, over 4,096 from one
    assert not packed.pays(69 * 768, 32) and not packed.pays(69 * 768, 1)
    assert packed.pays(512 * 768, 2) and not packed.pays(512 * 768, 1)
    assert packed.pays(4096 * 768, 1)
    # bf16 pays for large layers, or many rows
    assert packed.bf16_pays(4096 * 768, 1) and packed.bf16_pays(3072 * 832, 1)
    assert packed.bf16_pays(512 * 768, 32) and not packed.bf16_pays(512 * 768, 1)


@pytest.mark.parametrize("size", [(3, 5), (40, 300)])
def test_packed_tanh_equals_torch(size):
    from charrnn.models import packed

    x = torch.randn(size) * 4
    with torch.no_grad():  # the sigmoid form from 2,048 values
        torch.testing.assert_close(packed.tanh(x), torch.tanh(x), rtol=0, atol=3e-7)
    x.requires_grad_(True)
    assert packed.tanh(x).grad_fn.name() == "TanhBackward0"  # training keeps torch's tanh


@pytest.mark.parametrize("onednn", [False, True])
def test_packed_linear_with_tanh(monkeypatch, onednn):
    from charrnn.models import packed

    monkeypatch.setattr(packed, "pays", lambda weights, rows: onednn)
    torch.manual_seed(5)
    layer = nn.Linear(48, 64)
    x = torch.randn(40, 48)
    with torch.no_grad():
        torch.testing.assert_close(
            packed.linear(layer, x, "tanh"), torch.tanh(layer(x)), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(packed.linear(layer, x), layer(x), rtol=1e-5, atol=1e-5)


def test_packed_weights_follow_parameter_updates(monkeypatch):
    from charrnn.models import packed

    monkeypatch.setattr(packed, "worth_it", lambda *args: True)
    torch.manual_seed(4)
    stack = RNNStack(8, ModelConfig(cell="gru", hidden_size=8)).eval()
    x = torch.randn(2, 8)
    with torch.no_grad():
        before, _ = stack.step(x)
        stack.rnn.weight_ih_l0.mul_(0.5)  # an optimizer step changes weights in place
        after, _ = stack.step(x)
    reference, _ = stack.step(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed_input", [False, True])
def test_layer_by_layer_equals_the_fused_module(cell, bidirectional, packed_input):
    torch.manual_seed(6)
    config = ModelConfig(cell=cell, hidden_size=6, num_layers=3, dropout=0.5)
    stack = RNNStack(5, config, bidirectional=bidirectional).train()
    x = torch.randn(3, 7, 5)
    lengths = torch.tensor([4, 7, 1]) if packed_input else None
    state = stack.init_state(3)
    state = tuple(torch.randn_like(s) for s in state)
    ours, our_state = stack(x, state, lengths=lengths)  # dropout between layers: our own
    assert not torch.equal(ours, stack(x, state, lengths=lengths)[0])  # fresh masks each call
    stack.between_dropout = stack.rnn.dropout = 0.0  # without dropout the two paths agree
    mine, mine_state = stack._layer_by_layer(x if lengths is None else _pack(x, lengths), state)
    fused, fused_state = stack(x, state, lengths=lengths)
    if lengths is not None:
        mine, _ = torch.nn.utils.rnn.pad_packed_sequence(mine, batch_first=True, total_length=7)
    torch.testing.assert_close(mine, fused, rtol=1e-5, atol=1e-6)
    for a, b in zip(zip(*mine_state, strict=True), fused_state, strict=True):
        torch.testing.assert_close(torch.cat(a), b, rtol=1e-5, atol=1e-6)


def _pack(x, lengths):
    return torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_drops_its_share_and_keeps_the_mean(p):
    from charrnn.models.rnn import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1001, requires_grad=True)  # an odd size: the last word is cut
    y = dropout(x, p, True)
    dropped = float((y == 0).float().mean())
    assert dropped == pytest.approx(p, abs=0.005)  # 400,400 draws: 5 sigma is about 0.004
    assert float(y.detach().mean()) == pytest.approx(1.0, abs=0.01)
    kept = y.detach()[y != 0]
    assert torch.allclose(kept, kept[0]) and float(kept[0]) == pytest.approx(1 / (1 - p), rel=1e-3)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient goes through the same mask
    torch.manual_seed(0)
    assert torch.equal(dropout(x, p, True), y)  # torch's generator: seeded, repeatable
    assert dropout(x, p, False) is x and dropout(x, 0.0, True) is x


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_weight_dropout_keeps_one_recurrent_mask_per_sequence(cell):
    """DropConnect (--weight-dropout): the fused pass over a sequence and stepping through it
    with `step_weights` drop the same recurrent weights for every step; evaluation drops none."""
    torch.manual_seed(3)
    config = ModelConfig(cell=cell, hidden_size=8, num_layers=1, dropout=0.0, weight_dropout=0.5)
    stack = RNNStack(5, config).train()
    x = torch.randn(2, 9, 5)
    torch.manual_seed(11)
    fused, _ = stack(x)
    torch.manual_seed(11)
    weights = stack.step_weights()
    state, steps = None, []
    for t in range(x.shape[1]):
        h, state = stack.step(x[:, t], state, weights)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 1), fused, rtol=1e-5, atol=1e-6)
    # the mask is on the recurrent weights only, and half of them are gone
    dropped = weights[0][1]
    assert float((dropped == 0).float().mean()) == pytest.approx(0.5, abs=0.1)
    assert weights[0][0] is stack.layer_weights()[0][0]
    fused.sum().backward()  # the gradient reaches the weights through the mask
    assert stack.rnn.weight_hh_l0.grad.abs().sum() > 0
    stack.eval()
    plain = RNNStack(5, ModelConfig(cell=cell, hidden_size=8, num_layers=1, dropout=0.0)).eval()
    plain.load_state_dict(stack.state_dict())
    torch.testing.assert_close(stack(x)[0], plain(x)[0])
    assert stack.step_weights() is None


def test_weight_dropout_in_a_seq2seq_decoder_and_a_classifier():
    """The seq2seq decoder draws its mask once per batch; training changes with it and
    evaluation does not."""
    torch.manual_seed(0)
    config = ModelConfig(cell="gru", hidden_size=8, embed_size=6, dropout=0.0, weight_dropout=0.4)
    src, lengths = torch.randint(4, 20, (3, 5)), torch.tensor([5, 3, 2])
    for name, args in (
        ("seq2seq-gru", (src, lengths, torch.randint(4, 20, (3, 4)))),
        ("classify-gru", (src, lengths)),
    ):
        sizes = {"num_classes": 3} if "classify" in name else {"source_vocab_size": 20}
        model = models.build(name, config, 20, **sizes)
        model.train()
        a, b = model(*args)[0], model(*args)[0]
        assert not torch.allclose(a, b)  # a fresh mask each batch
        model.eval()
        torch.testing.assert_close(model(*args)[0], model(*args)[0])
