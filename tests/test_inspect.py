"""`charrnn inspect gradients`: gradient flow through time (charrnn.inspect.gradflow), checked
against torch.nn cells in a plain autograd loop, a hand-computed linear RNN, and exact
Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_error, ok, png_info
from torch import nn

from charrnn import models
from charrnn.config import FlowConfig, GatesConfig, ModelConfig
from charrnn.inspect import gates, gradflow

CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
FAST = ["--windows", "2", "--length", "30", "--threads", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: small steps run faster, and beside other work on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 20, encoding="utf-8")
    return path


def _model(cell: str, **options) -> nn.Module:
    config = ModelConfig(cell=cell, embed_size=5, hidden_size=7, dropout=0.0, **options)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return models.build(cell, config, vocab_size=11).double().eval()


def _subject(model: nn.Module, tokens: int = 200) -> gradflow.Subject:
    ids = np.random.default_rng(0).integers(4, 11, tokens)
    return gradflow.Subject("m", "m", model, ids, "random ids")


def _naive_norms(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The reference: torch.nn cells holding the model's weights in a plain loop, autograd's
    gradient of the last step's loss with respect to every hidden state."""
    stack = model.rnn
    cells = []
    for w_ih, w_hh, b_ih, b_hh in stack.layer_weights():
        options = {"nonlinearity": stack.rnn_kind} if stack.cell == "rnn" else {}
        cell = CELLS[stack.cell](w_ih.shape[1], stack.hidden_size, **options).double()
        cell.load_state_dict(
            {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
        )
        cells.append(cell)
    ids, target = batch[:, :-1], batch[:, -1]
    zero = torch.zeros(ids.shape[0], stack.hidden_size, dtype=torch.float64, requires_grad=True)
    h, c = [zero] * len(cells), [zero] * len(cells)
    kept = []
    for t in range(ids.shape[1]):
        x = model.embed(ids[:, t])
        for i, cell in enumerate(cells):
            if stack.cell == "lstm":
                h[i], c[i] = cell(x, (h[i], c[i]))
            else:
                h[i] = cell(x, h[i])
            h[i].retain_grad()
            x = h[i] + x if stack.residual and i > 0 else h[i]
        kept.append(list(h))
    F.cross_entropy(model.head(x), target, reduction="sum").backward()
    steps = len(kept)
    return torch.tensor(
        [
            [kept[steps - 1 - k][i].grad.norm(dim=1).mean() for k in range(steps)]
            for i in range(len(cells))
        ]
    )


@pytest.mark.parametrize(
    "cell,options",
    [
        ("rnn", {}),
        ("rnn", {"nonlinearity": "relu"}),
        ("gru", {"num_layers": 2}),
        ("lstm", {"num_layers": 2}),
        ("lstm", {"num_layers": 3, "residual": True}),
    ],
)
def test_gradient_norms_match_a_naive_loop_over_torch_cells(cell, options):
    model = _model(cell, **options)
    config = FlowConfig(windows=3, length=25)
    subject = _subject(model)
    flow = gradflow.gradient_flow(subject, config)
    batch = gradflow.windows(subject.ids, config.windows, config.length, "ids")
    expected = _naive_norms(model, batch)
    measured = torch.tensor([layer.grad_norm for layer in flow.layers], dtype=torch.float64)
    assert measured.shape == (model.rnn.num_layers, 25)
    torch.testing.assert_close(measured, expected, rtol=1e-10, atol=0)
    # and the step-by-step loop is the model's own computation
    logits = gradflow.unroll(model, batch[:, :-1]).logits.detach()
    fused = model(batch[:, :-1])[0][:, -1].detach()  # torch's fused RNN modules
    torch.testing.assert_close(logits, fused, rtol=1e-9, atol=1e-9)


def test_a_linear_rnn_by_hand():
    """relu(0.5 P h + 1) with P a permutation stays positive, so it is linear: each step back
    multiplies the gradient by (0.5 P)^T, which scales its norm by exactly 0.5."""
    model = _model("rnn", nonlinearity="relu")
    size = model.rnn.hidden_size
    w_ih, w_hh, b_ih, b_hh = model.rnn.layer_weights()[0]
    permutation = torch.eye(size, dtype=torch.float64).roll(1, dims=0)
    with torch.no_grad():
        w_ih.zero_(), w_hh.copy_(0.5 * permutation), b_ih.fill_(1.0), b_hh.zero_()
    subject = _subject(model)
    flow = gradflow.gradient_flow(subject, FlowConfig(windows=4, length=60))
    (layer,) = flow.layers
    # the last gradient by hand: h follows h' = 0.5 P h + 1 from 0 whatever the text,
    # dL/dh = W^T (softmax(W h + b) - onehot(target))
    h = np.zeros(size)
    for _ in range(60):
        h = 0.5 * permutation.numpy() @ h + 1.0
    weight, bias = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    p = np.exp(weight @ h + bias)
    p /= p.sum()
    batch = gradflow.windows(subject.ids, 4, 60, "ids")
    last = np.mean([np.linalg.norm(weight.T @ (p - np.eye(len(p))[y])) for y in batch[:, -1]])
    expected = [last * 0.5**k for k in range(60)]
    np.testing.assert_allclose(layer.grad_norm, expected, rtol=1e-12)
    assert flow.as_dict()["layers"][0]["ratio_50"] == pytest.approx(0.5**50, rel=1e-12)
    assert layer.jacobian_norm == pytest.approx(0.5, rel=1e-9)
    assert layer.weight_norm == pytest.approx(0.5, rel=1e-12)


def test_a_vanilla_rnn_with_small_weights_vanishes():
    model = _model("rnn")
    w_hh = model.rnn.layer_weights()[0][1]
    with torch.no_grad():
        w_hh *= 0.5 / torch.linalg.matrix_norm(w_hh, ord=2)
    flow = gradflow.gradient_flow(_subject(model), FlowConfig(windows=4, length=50))
    (layer,) = flow.layers
    norms = layer.grad_norm
    # each step back multiplies by a Jacobian of norm at most |W_hh| = 0.5 (tanh' <= 1)
    assert all(b <= 0.5 * a * (1 + 1e-12) for a, b in zip(norms, norms[1:], strict=False))
    assert norms[49] < 1e-14 * norms[0]
    assert layer.jacobian_norm <= layer.weight_norm * (1 + 1e-9)
    assert layer.weight_norm == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["tanh", "relu", "gru", "lstm"])
def test_jacobian_norms_against_the_exact_matrix_norm(kind):
    gates, size, rows = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}[kind], 6, 10
    generator = torch.Generator().manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    weights = [
        randn(gates * size, 4),
        randn(gates * size, size),
        randn(gates * size),
        randn(gates * size),
    ]
    state_size = 2 * size if kind == "lstm" else size
    inp, at = randn(rows, 4), randn(rows, state_size)
    step = gradflow.flat_step(kind, weights, inp, size)
    estimate = gradflow.top_singular_values(
        step, at, iterations=100, tolerance=1e-10, generator=torch.Generator().manual_seed(0)
    )
    exact = []
    for r in range(rows):
        one = gradflow.flat_step(kind, weights, inp[r : r + 1], size)
        jacobian = torch.func.jacrev(one)(at[r : r + 1])[0, :, 0, :]  # (S, S)
        exact.append(torch.linalg.matrix_norm(jacobian, ord=2))
    torch.testing.assert_close(estimate, torch.stack(exact), rtol=1e-8, atol=1e-12)


# -- the command -------------------------------------------------------------------------------


def test_a_run_on_its_validation_split(run, tiny_runs):
    data = ok(run("inspect", "gradients", tiny_runs["lm"], *FAST, "--json", "-q")).json()
    assert (data["windows"], data["length"]) == (2, 30)
    (flow,) = data["flows"]
    assert flow["name"] == "lm" and flow["model"] == "lstm" and flow["text"].endswith("(val)")
    (layer,) = flow["layers"]
    assert len(layer["grad_norm"]) == 30 and all(0 < n < math.inf for n in layer["grad_norm"])
    assert layer["ratio_50"] is None  # windows of 30 tokens
    assert layer["jacobian_norm"] > 0 and layer["weight_norm"] > 0
    table = ok(run("inspect", "gradients", tiny_runs["lm"], *FAST)).stdout.splitlines()
    header = table[1].split()
    assert header[:4] == ["model", "layer", "k=0", "k=1"] and "k=29" in header
    assert table[2].split()[:2] == ["lm", "1"]


def test_fresh_models_compared_in_one_picture(run, text_file, tmp_path):
    picture = tmp_path / "flow.png"
    args = ["--init", "rnn", "--init", "lstm", "--text", text_file, "--hidden-size", "16"]
    first = ok(run("inspect", "gradients", *args, *FAST, "--json", "-o", picture)).json()
    assert [f["name"] for f in first["flows"]] == ["rnn at init", "lstm at init"]
    assert all(f["hidden_size"] == 16 for f in first["flows"])
    info = png_info(picture)
    assert (info["width"], info["height"]) == (1400, 550)
    assert info["text"]["Title"] == "Gradient flow through time"
    again = ok(run("inspect", "gradients", *args, *FAST, "--json")).json()
    assert again == first  # seeded
    other = ok(run("inspect", "gradients", *args, *FAST, "--json", "--seed", "2")).json()
    assert other["flows"][0]["layers"] != first["flows"][0]["layers"]


def test_text_from_stdin(run, tiny_runs, text_file):
    text = text_file.read_text(encoding="utf-8")
    data = ok(
        run("inspect", "gradients", tiny_runs["lm"], "--text", "-", *FAST, "--json", stdin=text)
    ).json()
    assert data["flows"][0]["text"] == "<stdin>" and data["flows"][0]["tokens"] == len(text)


def test_errors(run, tiny_runs, text_file, tmp_path):
    gradients = ["inspect", "gradients"]
    assert_error(run(*gradients, tiny_runs["seq2seq"], *FAST), 1, "supports only language models")
    assert_error(run(*gradients, "--init", "seq2seq-gru", "--text", text_file), 2, "only language")
    assert_error(run(*gradients, "--init", "cnn", "--text", text_file), 2, "unknown model 'cnn'")
    assert_error(run(*gradients, "--init", "rnn"), 2, "--init: a fresh model needs a text")
    assert_error(run(*gradients), 2, "nothing to inspect")
    short = tmp_path / "short.txt"
    short.write_text("too short", encoding="utf-8")
    assert_error(run(*gradients, tiny_runs["lm"], "--text", short, *FAST), 1, "too few")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert_error(run(*gradients, tiny_runs["lm"], "--text", empty), 1, "is empty")
    assert_error(run(*gradients, tiny_runs["lm"], "--length", "1"), 2, "--length")
    bad = tmp_path / "flow.gif"
    assert_error(run(*gradients, tiny_runs["lm"], "-o", bad), 2, "must be a .png or .svg")
    assert_error(run(*gradients, tmp_path / "nowhere"), 1, "nowhere")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "short.txt", "text.txt"]


# -- charrnn inspect gates ---------------------------------------------------------------------

GATE_ROWS = {"lstm": {"input": 0, "forget": 1, "output": 3}, "gru": {"reset": 0, "update": 1}}


def _naive_gates(model: nn.Module, ids: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """The reference: torch.nn cells holding the model's weights in a plain loop over ids
    (B, T); at each step every gate recomputed by hand from the cell's weights, the state
    before the step and the layer's input, in torch's order (LSTM i, f, g, o; GRU r, z, n).
    Per layer, {gate: (B, T, H)}."""
    stack = model.rnn
    cells = []
    for w_ih, w_hh, b_ih, b_hh in stack.layer_weights():
        cell = CELLS[stack.cell](w_ih.shape[1], stack.hidden_size).double()
        cell.load_state_dict(
            {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
        )
        cells.append(cell)
    zero = torch.zeros(ids.shape[0], stack.hidden_size, dtype=torch.float64)
    h, c = [zero] * len(cells), [zero] * len(cells)
    found = [{name: [] for name in GATE_ROWS[stack.cell]} for _ in cells]
    with torch.no_grad():
        for t in range(ids.shape[1]):
            x = model.embed(ids[:, t])
            for i, cell in enumerate(cells):
                size = stack.hidden_size
                for name, block in GATE_ROWS[stack.cell].items():
                    rows = slice(block * size, (block + 1) * size)
                    pre = x @ cell.weight_ih[rows].T + cell.bias_ih[rows]
                    pre = pre + h[i] @ cell.weight_hh[rows].T + cell.bias_hh[rows]
                    found[i][name].append(torch.sigmoid(pre))
                if stack.cell == "lstm":
                    h[i], c[i] = cell(x, (h[i], c[i]))
                else:
                    h[i] = cell(x, h[i])
                x = h[i] + x if stack.residual and i > 0 else h[i]
    return [{name: torch.stack(steps, 1) for name, steps in layer.items()} for layer in found]


def _sharp(model: nn.Module) -> nn.Module:
    """Larger weights, so that the gates saturate often (and the counts mean something)."""
    with torch.no_grad():
        for weights in model.rnn.layer_weights():
            for w in weights:
                w *= 4
    return model


@pytest.mark.parametrize(
    "cell,options",
    [
        ("gru", {"num_layers": 2}),
        ("lstm", {"num_layers": 2}),
        ("lstm", {"num_layers": 3, "residual": True}),
    ],
)
def test_gates_match_a_naive_loop_over_torch_cells(cell, options):
    model = _sharp(_model(cell, **options))
    ids = torch.from_numpy(np.random.default_rng(1).integers(4, 11, (3, 40)))
    traced = gates.trace(model, ids)
    expected = _naive_gates(model, ids)
    for layer, reference in zip(traced.gates, expected, strict=True):
        assert layer.shape == (len(gates.GATES[cell]), 3, 40, 7)
        for g, name in enumerate(gates.GATES[cell]):
            torch.testing.assert_close(layer[g], reference[name], rtol=1e-10, atol=1e-12)
    # and the step-by-step loop is the model's own computation, state included
    logits, state = model(ids)  # torch's fused RNN modules
    fused = logits.detach()
    torch.testing.assert_close(model.head(traced.outputs).detach(), fused, rtol=1e-9, atol=1e-9)
    for mine, theirs in zip(traced.state, state, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_saturated_fractions_against_a_naive_count(cell):
    """600 tokens in 2 streams of 300 steps: more than one chunk of CHUNK steps each, so the
    state carried between chunks is checked too."""
    assert gates.CHUNK < 300
    model = _sharp(_model(cell, num_layers=2))
    ids = np.random.default_rng(2).integers(4, 11, 700)
    found = gates.saturation(_subject_of(model, ids), GatesConfig(length=600, streams=2))
    assert (found.read, found.streams, found.tokens) == (600, 2, 700)
    expected = _naive_gates(model, torch.from_numpy(ids[:600].reshape(2, 300)))
    for layer, reference in zip(found.layers, expected, strict=True):
        assert [g.gate for g in layer.gates] == list(gates.GATES[cell])
        for stats in layer.gates:
            values = reference[stats.gate].numpy()  # (B, T, H)
            unit_left = [np.mean(values[:, :, u] < 0.1) for u in range(7)]
            unit_right = [np.mean(values[:, :, u] > 0.9) for u in range(7)]
            np.testing.assert_allclose(stats.unit_left, unit_left, rtol=0, atol=1e-12)
            np.testing.assert_allclose(stats.unit_right, unit_right, rtol=0, atol=1e-12)
            assert stats.left == pytest.approx(np.mean(values < 0.1), abs=1e-12)
            assert stats.right == pytest.approx(np.mean(values > 0.9), abs=1e-12)
            assert stats.mean == pytest.approx(values.mean(), rel=1e-9)
            assert stats.units_left == sum(f > 0.5 for f in unit_left)
            assert stats.units_right == sum(f > 0.5 for f in unit_right)
            rarely = sum(a + b < 0.1 for a, b in zip(unit_left, unit_right, strict=True))
            assert stats.units_unsaturated == rarely
    saturated = [s.left + s.right for layer in found.layers for s in layer.gates]
    assert sum(0 < s < 1 for s in saturated) >= len(saturated) / 2  # not all 0 or 1


def _subject_of(model: nn.Module, ids: np.ndarray) -> gradflow.Subject:
    return gradflow.Subject("m", "m", model, ids, "ids")


def test_saturation_by_hand():
    """W_hh = 0 and the gates' weights on one embedding dimension only, +1 for token 4 and
    -1 for every other token: a gate weighted +50 there is right-saturated exactly at token
    4 (a quarter of the text) and left-saturated elsewhere; one with bias +50 always
    right-saturated, -50 always left, and 0 (sigmoid 0.5) never saturated."""
    model = _model("lstm")
    size = model.rnn.hidden_size
    w_ih, w_hh, b_ih, b_hh = model.rnn.layer_weights()[0]
    with torch.no_grad():
        for w in (w_ih, w_hh, b_ih, b_hh):
            w.zero_()
        model.embed.weight.zero_()
        model.embed.weight[:, 0] = -1.0
        model.embed.weight[4, 0] = 1.0
        w_ih[:size, 0] = 50.0  # input: by the token
        b_ih[size : 2 * size] = -50.0  # forget: always shut
        b_hh[3 * size :] = 0.0  # output: sigmoid(0) = 0.5 always
    ids = np.array([4, 5, 6, 7] * 100)
    found = gates.saturation(_subject_of(model, ids), GatesConfig(length=400, streams=4))
    assert (found.read, found.streams) == (400, 4)
    (layer,) = found.layers
    by_name = {stats.gate: stats for stats in layer.gates}
    inp, forget, output = by_name["input"], by_name["forget"], by_name["output"]
    assert inp.unit_left == [0.75] * size and inp.unit_right == [0.25] * size
    assert (inp.left, inp.right, inp.units_left, inp.units_right) == (0.75, 0.25, size, 0)
    assert forget.unit_left == [1.0] * size and forget.unit_right == [0.0] * size
    assert (forget.units_left, forget.units_right, forget.units_unsaturated) == (size, 0, 0)
    assert forget.mean < 1e-20
    assert (output.left, output.right, output.units_unsaturated) == (0.0, 0.0, size)
    assert output.mean == pytest.approx(0.5)
    # a GRU whose update gate is always open and reset gate always shut
    model = _model("gru")
    w_ih, w_hh, b_ih, b_hh = model.rnn.layer_weights()[0]
    with torch.no_grad():
        for w in (w_ih, w_hh):
            w.zero_()
        b_hh.zero_()
        b_ih[:size] = -50.0  # reset (torch's first block)
        b_ih[size : 2 * size] = 50.0  # update
    found = gates.saturation(_subject_of(model, ids), GatesConfig(length=50))
    assert (found.read, found.streams) == (50, 1)  # under 2 x MIN_STREAM tokens: one stream
    update, reset = found.layers[0].gates
    assert (update.gate, update.right, update.units_right) == ("update", 1.0, size)
    assert (reset.gate, reset.left, reset.units_left) == ("reset", 1.0, size)


def test_streams():
    ids = np.arange(1000)
    batch = gates.streams(ids, GatesConfig(length=950, streams=4))
    assert batch.shape == (4, 237) and batch[1, 0] == 237 and batch[-1, -1] == 947
    assert gates.streams(ids, GatesConfig(length=250, streams=16)).shape == (2, 125)
    assert gates.streams(ids[:7], GatesConfig()).shape == (1, 7)


# -- the command


def test_gates_of_a_run(run, tiny_runs, tmp_path):
    picture = tmp_path / "gates.png"
    args = ["inspect", "gates", tiny_runs["lm"], "--length", "300", "--threads", "1"]
    data = ok(run(*args, "--json", "-o", picture)).json()
    assert (data["left_below"], data["right_above"]) == (0.1, 0.9)
    (found,) = data["models"]
    assert (found["name"], found["model"], found["cell"]) == ("lm", "lstm", "lstm")
    assert found["text"].endswith("(val)") and found["read"] == 300 and found["streams"] == 3
    (layer,) = found["layers"]
    assert [g["gate"] for g in layer["gates"]] == ["input", "forget", "output"]
    for gate in layer["gates"]:
        assert len(gate["unit_left"]) == len(gate["unit_right"]) == 16
        pairs = zip(gate["unit_left"], gate["unit_right"], strict=True)
        assert all(min(a, b) >= 0 and a + b <= 1 for a, b in pairs)
        assert 0 < gate["mean"] < 1
    info = png_info(picture)
    assert (info["width"], info["height"]) == (1200, 450)
    assert info["text"]["Title"] == "Gate saturation"
    table = ok(run(*args, "-q")).stdout.splitlines()
    assert table[1].split() == [
        "model", "layer", "gate", "left", "right", "mean", "units", "left>50%", "right>50%",
        "sat<10%",
    ]  # fmt: skip
    rows = [line.split() for line in table[2:5]]
    assert [row[:3] for row in rows] == [["lm", "1", g] for g in ("input", "forget", "output")]
    forget = layer["gates"][1]
    assert rows[1][3:7] == [
        f"{forget['left']:.3f}",
        f"{forget['right']:.3f}",
        f"{forget['mean']:.3f}",
        "16",
    ]


def test_gates_of_fresh_models(run, text_file, tmp_path):
    picture = tmp_path / "gates.svg"
    args = ["--init", "gru", "--init", "lstm", "--text", "-", "--hidden-size", "8"]
    args += ["--num-layers", "2", "--threads", "1"]
    text = text_file.read_text(encoding="utf-8")
    first = ok(run("inspect", "gates", *args, "--json", "-o", picture, stdin=text)).json()
    assert [f["name"] for f in first["models"]] == ["gru at init", "lstm at init"]
    gru, lstm = first["models"]
    assert [g["gate"] for g in gru["layers"][1]["gates"]] == ["update", "reset"]
    assert gru["text"] == "<stdin>" and gru["tokens"] == len(text) and gru["read"] == len(text)
    assert len(lstm["layers"]) == 2 and len(lstm["layers"][0]["gates"][0]["unit_left"]) == 8
    assert picture.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    again = ok(run("inspect", "gates", *args, "--json", stdin=text)).json()
    assert again == first  # seeded


def test_gates_errors(run, tiny_runs, text_file, tmp_path, capsys):
    from charrnn import runs

    rnn = tmp_path / "rnn"
    runs.start_training(
        str(tiny_runs["lm"].parent / "text"),
        rnn,
        model_name="rnn",
        model_options={"embed_size": 4, "hidden_size": 4},
        train_options={"batch_size": 2, "seq_len": 8, "max_steps": 1, "threads": 1},
    )
    capsys.readouterr()  # training's output
    gates_ = ["inspect", "gates"]
    assert_error(run(*gates_, rnn), 1, "rnn: rnn language models have no gates")
    assert_error(run(*gates_, "--init", "rnn", "--text", text_file), 2, "--init: rnn has no gates")
    found = run(*gates_, tiny_runs["seq2seq"])
    assert_error(found, 1, "inspect gates supports only language models")
    assert_error(run(*gates_, "--init", "seq2seq-gru", "--text", text_file), 2, "only language")
    assert_error(run(*gates_, "--init", "lstm"), 2, "--init: a fresh model needs a text")
    assert_error(run(*gates_), 2, "nothing to inspect")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert_error(run(*gates_, tiny_runs["lm"], "--text", empty), 1, "is empty")
    assert_error(run(*gates_, tiny_runs["lm"], "--length", "0"), 2, "--length")
    bad = tmp_path / "gates.gif"
    assert_error(run(*gates_, tiny_runs["lm"], "-o", bad), 2, "must be a .png or .svg")
    assert_error(run(*gates_, tiny_runs["lm"], "-o", tmp_path / "no" / "g.png"), 1, "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "rnn", "text.txt"]
