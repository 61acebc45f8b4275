"""Each kind's parameter count by formula, without torch (`charrnn models` lists them at no
cost; the tests check every registry entry's formula against the built network). The kinds
registry (charrnn.kinds) names each kind's class here."""

from __future__ import annotations

from charrnn.config import ModelConfig

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def rnn_parameters(
    cell: str, input_size: int, hidden_size: int, num_layers: int, directions: int = 1
) -> int:
    """Parameters of a torch RNN stack: g * H * (in + H) weights and 2 * g * H biases per layer
    and direction, g = 1 (rnn), 3 (gru), 4 (lstm)."""
    g, h = GATES[cell], hidden_size
    total = 0
    for layer in range(num_layers):
        inp = input_size if layer == 0 else h * directions
        total += directions * (g * h * (inp + h) + 2 * g * h)
    return total


def _head(config: ModelConfig, vocab_size: int) -> int:
    """The output layer over the vocabulary (a tied one has only its bias)."""
    h, v = config.hidden_size, vocab_size
    return v if config.tie_weights else h * v + v


class LanguageModelSize:
    """charrnn.models.rnn.RNNLanguageModel."""

    @staticmethod
    def parameters(cell: str, config: ModelConfig, vocab_size: int, *_) -> int:
        v, e, h, n = vocab_size, config.embed_size, config.hidden_size, config.num_layers
        return v * e + rnn_parameters(cell, e, h, n) + _head(config, v)

    @staticmethod
    def growth(cell: str) -> str:
        g = GATES[cell]
        return f"V*E + {g}H(E+H+2) + (L-1)*{g}H(2H+2) + V(H+1)  ~ {2 * g}LH^2 for large H"


class Seq2SeqSize:
    """charrnn.models.seq2seq.Seq2SeqModel."""

    @staticmethod
    def parameters(
        cell: str, config: ModelConfig, vocab_size: int, source_vocab_size, _=None
    ) -> int:
        v, e, h, n = vocab_size, config.embed_size, config.hidden_size, config.num_layers
        dirs = 2 if config.bidirectional else 1
        encoder = rnn_parameters(cell, e, h // dirs, n, dirs)
        bridge = (2 if cell == "lstm" else 1) * (h * h + h)
        attention = {"dot": 0, "general": h * h, "additive": 2 * h * h + 2 * h, "none": 0}
        combine = 2 * h * h if config.attention != "none" else 0
        feed = h if config.input_feeding and config.attention != "none" else 0
        decoder = rnn_parameters(cell, e + feed, h, n)
        embeddings = ((source_vocab_size or v) + v) * e
        layers = encoder + bridge + decoder + attention[config.attention] + combine
        return embeddings + layers + _head(config, v)

    @staticmethod
    def growth(cell: str) -> str:
        return (
            f"(V_src + V_tgt)E + encoder + decoder + attention + V_tgt(H+1) ~ {2 * GATES[cell]}"
            "LH^2 + 3H^2 for large H (encoder: H/2 per direction when bidirectional)"
        )


class ClassifierSize:
    """charrnn.models.classifier.Classifier."""

    @staticmethod
    def parameters(cell: str, config: ModelConfig, vocab_size: int, _, num_classes) -> int:
        v, e, h, n = vocab_size, config.embed_size, config.hidden_size, config.num_layers
        dirs = 2 if config.bidirectional else 1
        c = num_classes or 2
        pool = h * h + 2 * h if config.pooling == "attention" else 0
        return v * e + rnn_parameters(cell, e, h // dirs, n, dirs) + pool + h * c + c

    @staticmethod
    def growth(cell: str) -> str:
        return (
            f"V*E + RNN stack + C(H+1) ~ {GATES[cell]}LH^2 for large H, bidirectional "
            "(H/2 per direction); attention pooling adds H^2"
        )
