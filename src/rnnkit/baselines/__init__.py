"""The non-RNN peers of rnnkit's models, scored in the same units as they are (the language-model baselines:
nats per token of the same token ids).

- :mod:`rnnkit.baselines.ngram`: interpolated modified Kneser-Ney n-gram language models (orders 1-10).
- :mod:`rnnkit.baselines.hmm`: discrete hidden Markov models trained by Baum-Welch, scored by the forward algorithm.
- :mod:`rnnkit.baselines.forecast`: naive and seasonal-naive forecasters, AutoETS and AutoARIMA (statsforecast).
"""
