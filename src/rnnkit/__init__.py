"""rnnkit: recurrent neural networks written from their equations, trained by backpropagation through time."""

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.convert import from_keras_weights
from rnnkit.decoding import generate
from rnnkit.layers import GRU, LSTM, RNN, Recurrent, RecurrentConfig

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "RNNCell",
    "Recurrent",
    "RecurrentConfig",
    "from_keras_weights",
    "generate",
]
