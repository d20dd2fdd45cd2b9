"""Models: what a run directory can rebuild, one module per model family.

- :mod:`~rnnkit.models.registry`: :data:`MODELS`, :func:`register_model`, :func:`build_model`,
  :func:`save_model`, :func:`load_model` and :class:`ConfiguredModel`, the base of every model below.
- :mod:`~rnnkit.models.lm`: :class:`LanguageModel`, next-token prediction (many-to-many).
- :mod:`~rnnkit.models.seq2seq`: :class:`Seq2Seq`, encoder-decoder with Bahdanau or Luong attention.
- :mod:`~rnnkit.models.classify`: :class:`SequenceClassifier` and the pooling of a padded sequence (many-to-one).
- :mod:`~rnnkit.models.tag`: :class:`SequenceTagger` with character features and a CRF (many-to-many, aligned).
- :mod:`~rnnkit.models.conditional`: :class:`ConditionalGenerator`, text from a class label (one-to-many).

Importing this package registers every model (and the layers RNN, LSTM, GRU) in :data:`MODELS`, so
``from rnnkit.models import X`` works for every name below.
"""

from rnnkit.models.classify import (
    POOLINGS,
    SequenceClassifier,
    SequenceClassifierConfig,
    length_mask,
    pool_sequence,
)
from rnnkit.models.conditional import ConditionalGenerator, ConditionalGeneratorConfig
from rnnkit.models.forecast import Forecaster, ForecasterConfig  # noqa: F401
from rnnkit.models.lm import LanguageModel, LanguageModelConfig
from rnnkit.models.music import MusicModel, MusicModelConfig  # noqa: F401 (registers the music model)
from rnnkit.models.registry import (
    MODELS,
    ConfiguredModel,
    build_model,
    load_model,
    model_spec,
    register_model,
    save_model,
)
from rnnkit.models.seq2seq import (
    ATTENTIONS,
    BahdanauAttention,
    DecoderCarry,
    EncoderMemory,
    LuongAttention,
    Seq2Seq,
    Seq2SeqConfig,
)
from rnnkit.models.tag import (
    CHAR_FEATURES,
    CharFeatures,
    CharFeaturesConfig,
    SequenceTagger,
    SequenceTaggerConfig,
)

__all__ = [
    "ATTENTIONS",
    "CHAR_FEATURES",
    "MODELS",
    "POOLINGS",
    "BahdanauAttention",
    "CharFeatures",
    "CharFeaturesConfig",
    "ConditionalGenerator",
    "ConditionalGeneratorConfig",
    "ConfiguredModel",
    "DecoderCarry",
    "EncoderMemory",
    "LanguageModel",
    "LanguageModelConfig",
    "LuongAttention",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceClassifier",
    "SequenceClassifierConfig",
    "SequenceTagger",
    "SequenceTaggerConfig",
    "build_model",
    "length_mask",
    "load_model",
    "model_spec",
    "pool_sequence",
    "register_model",
    "save_model",
]
