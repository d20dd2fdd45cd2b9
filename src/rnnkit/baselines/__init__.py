"""The non-RNN peers of rnnkit's models, scored in the same units (nats per token of the same token ids).

- :mod:`rnnkit.baselines.ngram`: interpolated modified Kneser-Ney n-gram language models (orders 1-10).
- :mod:`rnnkit.baselines.hmm`: discrete hidden Markov models trained by Baum-Welch, scored by the forward algorithm.
"""
