"""charrnn: character- and BPE-level RNN/GRU/LSTM language models and RNN seq2seq models."""

__version__ = "0.1.0"
