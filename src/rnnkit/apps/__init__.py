"""Programs built on the library, above train and tasks: each uses them as any user's code could.

- :mod:`rnnkit.apps.corpora`: the course notes' 4-corpus system (``rnnkit corpora``): a classifier, a
  generator per corpus and a conditioned one, and the classifier's check of what they write;
- :mod:`rnnkit.apps.bench`: speed and memory of rnnkit's backends against torch.nn (``rnnkit bench``).

Only the command line (and benchmarks/) imports them; nothing in the library below does.
"""
