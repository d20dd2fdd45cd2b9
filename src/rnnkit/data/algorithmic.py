"""Algorithmic sequence-to-sequence data: sorting, copying, addition, and executing small programs.

Each generator draws examples ``(input text, target text)`` from a seeded :class:`random.Random`:

- ``sort``: ``--length L`` integers in 1..``--vocab V``, separated by spaces; the target is them sorted.
- ``copy``: the memorization task of Zaremba & Sutskever (2014): ``--length`` random digits, copied.
- ``add``: two ``--length``-digit numbers ``a+b``; the target is the sum.
- ``execute``: programs of the class of Zaremba & Sutskever (2014), "Learning to Execute": assignments,
  ``+``, ``-``, multiplication by a small number, ``if``/``else`` expressions, ``for`` loops over a
  ``range``, and a final ``print``; ``--length`` is the number of digits of the numbers in it and
  ``--nesting`` how many operations are composed. The target is what the program prints followed by
  ``.``, found by running the program (:func:`run_program`), never by a second interpreter.

Every generator also takes the paper's input transforms, ``reverse_input`` (Sutskever et al. 2014) and
``double_input`` (the input presented twice); the target is unchanged.

**Splits.** An example belongs to the split its input text hashes into (80% train, 10% valid, 10% test,
:func:`split_of`); a split's sampler draws examples and keeps those of its split, so the train, valid
and test sets are disjoint by construction, whatever the seeds.

**Curriculum** (Zaremba & Sutskever 2014, section 4) for a target difficulty (length a, nesting b):
``baseline`` trains on (a, b) only; ``naive`` starts at (1, 1) and makes the examples harder (length + 1,
then nesting + 1 with length back to 1) whenever the model masters the current level; ``mix`` draws each
example's length from 1..a and nesting from 1..b; ``combined`` draws each example from ``mix`` with
probability 1/5 and from the naive level otherwise (the authors' code calls it "blend").
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from rnnkit.errors import ConfigError, DataError

SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}
STRATEGIES = ("baseline", "naive", "mix", "combined")
UNIQUE_PATIENCE = 2000  # draws without a new example after which a unique set is taken as complete
MIX_SHARE = 0.2  # combined: the share of examples drawn as in mix (the authors' "blend")

Difficulty = tuple[int, int]  # (length, nesting)


@dataclass(frozen=True)
class Example:
    input: str
    target: str


def split_of(text: str) -> str:
    """The split (``train``, ``valid`` or ``test``) an input belongs to: a fixed hash of its text."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=b"rnnkit-split").digest()
    u = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
    return next(name for name, (low, high) in SPLITS.items() if low <= u < high)


def derive_seed(*parts) -> int:
    """A 64-bit seed from any tuple of ints and strings (stable across runs and machines)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def run_program(code: str) -> str:
    """Run a generated program and return what it printed (lines joined by newlines).

    The program runs with no builtins but ``range`` and a ``print`` that records its output, so
    the target is Python's own answer.
    """
    printed: list[str] = []

    def capture(*args) -> None:
        printed.append(" ".join(str(a) for a in args))

    exec(compile(code, "<program>", "exec"), {"__builtins__": {}, "range": range, "print": capture})
    return "\n".join(printed)


# -- generators -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorConfig:
    """Which generator and its options; ``length`` and ``nesting`` are the target difficulty."""

    task: str
    length: int
    vocab: int | None = None  # sort: integers 1..vocab
    nesting: int = 1  # execute
    reverse_input: bool = False
    double_input: bool = False


class Generator:
    """A family of examples. Subclasses set ``name``, ``help``, ``separator`` ("" for characters, " "
    for space-separated tokens), ``options`` and the defaults, and write ``symbols``, ``problem`` and
    ``solve``."""

    name = ""
    help = ""
    separator = ""
    options: tuple[str, ...] = ("length",)
    default_length = 10
    max_length: int | None = None

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        if isinstance(config.length, bool) or not isinstance(config.length, int) or config.length < 1:
            raise ConfigError(f"--length must be an integer >= 1, got {config.length!r}")
        if self.max_length is not None and config.length > self.max_length:
            raise ConfigError(f"{self.name}: --length must be <= {self.max_length}, got {config.length}")
        if config.nesting != 1 and "nesting" not in self.options:
            raise ConfigError(f"--nesting applies to the execute task only, not to {self.name}")
        if config.vocab is not None and "vocab" not in self.options:
            raise ConfigError(f"--vocab applies to the sort task only, not to {self.name}")

    @property
    def target_difficulty(self) -> Difficulty:
        return (self.config.length, self.config.nesting)

    def symbols(self) -> list[str]:
        """Every token an input or a target can hold."""
        raise NotImplementedError

    def problem(self, rng: random.Random, length: int, nesting: int) -> str:
        """A raw input of the given difficulty (before the input transforms)."""
        raise NotImplementedError

    def solve(self, problem: str) -> str:
        """The target of a raw input."""
        raise NotImplementedError

    def tokens(self, text: str) -> list[str]:
        return text.split() if self.separator else list(text)

    def transform(self, problem: str) -> str:
        """The input the model reads: the problem, reversed and/or presented twice if asked."""
        parts = self.tokens(problem)
        if self.config.reverse_input:
            parts = parts[::-1]
        if self.config.double_input:
            parts = parts + parts
        return self.separator.join(parts)

    def longest(self) -> tuple[int, int] | None:
        """(problem tokens, target tokens) of the longest example at the target difficulty, None if not known.
        By default both are ``--length`` (sort, copy)."""
        return self.config.length, self.config.length

    def max_tokens(self) -> tuple[int, int] | None:
        """(input tokens, target tokens) of the longest example at the target difficulty, if known: the
        longest problem as the model reads it (twice over with ``double_input``) and the longest target."""
        longest = self.longest()
        if longest is None:
            return None
        problem, target = longest
        return (2 * problem if self.config.double_input else problem), target


GENERATORS: dict[str, type[Generator]] = {}


def register_generator(cls: type[Generator]) -> type[Generator]:
    if cls.name in GENERATORS:
        raise ValueError(f"generator {cls.name!r} is already registered")
    GENERATORS[cls.name] = cls
    return cls


def make_generator(config: GeneratorConfig) -> Generator:
    cls = GENERATORS.get(config.task)
    if cls is None:
        raise ConfigError(f"unknown task {config.task!r}; available: {', '.join(GENERATORS)}")
    return cls(config)


@register_generator
class SortGenerator(Generator):
    name = "sort"
    help = "sort --length integers drawn from 1..--vocab (the course notes: L=32, V=32)"
    separator = " "
    options = ("length", "vocab")
    default_length = 32
    default_vocab = 32

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        if config.vocab is None or config.vocab < 1:
            raise ConfigError(f"sort: --vocab must be an integer >= 1, got {config.vocab!r}")

    def symbols(self) -> list[str]:
        return [str(i) for i in range(1, self.config.vocab + 1)]

    def problem(self, rng: random.Random, length: int, nesting: int) -> str:
        return " ".join(str(rng.randint(1, self.config.vocab)) for _ in range(length))

    def solve(self, problem: str) -> str:
        return " ".join(str(n) for n in sorted(int(t) for t in problem.split()))


@register_generator
class CopyGenerator(Generator):
    name = "copy"
    help = "copy --length random digits (memorization; --reverse-input, --double-input as in the paper)"
    default_length = 10

    def symbols(self) -> list[str]:
        return list(string.digits)

    def problem(self, rng: random.Random, length: int, nesting: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(length))

    def solve(self, problem: str) -> str:
        return problem


@register_generator
class AddGenerator(Generator):
    name = "add"
    help = "add two --length-digit numbers (the paper's headline: 9 digits)"
    default_length = 9

    def symbols(self) -> list[str]:
        return [*string.digits, "+"]

    def problem(self, rng: random.Random, length: int, nesting: int) -> str:
        low = 0 if length == 1 else 10 ** (length - 1)
        return f"{rng.randint(low, 10**length - 1)}+{rng.randint(low, 10**length - 1)}"

    def solve(self, problem: str) -> str:
        a, b = problem.split("+")
        return str(int(a) + int(b))

    def longest(self) -> tuple[int, int]:
        L = self.config.length
        return 2 * L + 1, L + 1  # a+b with L digits each; the sum has up to L + 1


@register_generator
class ExecuteGenerator(Generator):
    """Programs built as in Zaremba & Sutskever (2014): ``nesting`` operations, each taking the previous
    one's expression as one of its operands (at a random place) and fresh numbers of up to ``length``
    digits for the others. Operations: ``a+b``, ``a-b``; ``a*k`` with k in 1..4·length; a plain operand;
    an assignment ``v=a`` used as ``v+b`` or ``v-b``; a loop ``v=a`` then
    ``for x in range(k):v+=b`` (or ``-=``) with k in 1..4·length; ``c if a<b else d`` (or ``>``)."""

    name = "execute"
    help = "print the output of a small Python program (Learning to Execute; --length digits, --nesting)"
    options = ("length", "nesting")
    default_length = 4
    max_length = 9
    max_nesting = 12  # each operation may take a variable name; 25 letters leave room

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        if not 1 <= config.nesting <= self.max_nesting:
            raise ConfigError(f"execute: --nesting must be in 1..{self.max_nesting}, got {config.nesting}")

    def symbols(self) -> list[str]:
        return [*string.digits, *string.ascii_lowercase, *" \n+-*=<>():."]

    def problem(self, rng: random.Random, length: int, nesting: int) -> str:
        lines: list[str] = []
        names = [c for c in string.ascii_lowercase if c != "x"]  # x is the loop variable
        rng.shuffle(names)
        previous: list[str] = []  # the last operation's expression, consumed by the next one

        def operands(n: int) -> list[str]:
            values = [previous.pop() if previous else str(rng.randint(1, 10**length - 1))]
            values += [str(rng.randint(1, 10**length - 1)) for _ in range(n - 1)]
            rng.shuffle(values)
            return values

        for _ in range(nesting):
            kind = rng.choice(("pair", "smallmul", "equality", "vars", "loop", "ifstat"))
            if kind == "pair":
                a, b = operands(2)
                expr = f"({a}{rng.choice('+-')}{b})"
            elif kind == "smallmul":
                (a,) = operands(1)
                k = rng.randint(1, 4 * length)
                expr = f"({a}*{k})" if rng.random() < 0.5 else f"({k}*{a})"
            elif kind == "equality":
                (expr,) = operands(1)
            elif kind == "vars":
                a, b = operands(2)
                v = names.pop()
                lines.append(f"{v}={a}")
                expr = f"({v}{rng.choice('+-')}{b})"
            elif kind == "loop":
                a, b = operands(2)
                v = names.pop()
                lines.append(f"{v}={a}")
                lines.append(f"for x in range({rng.randint(1, 4 * length)}):{v}{rng.choice('+-')}={b}")
                expr = v
            else:
                a, b, c, d = operands(4)
                expr = f"({c} if {a}{rng.choice('<>')}{b} else {d})"
            previous.append(expr)
        return "\n".join([*lines, f"print({previous.pop()})"])

    def solve(self, problem: str) -> str:
        return run_program(problem) + "."

    def longest(self) -> None:
        return None  # a program's length follows the operations it draws: no bound kept here


# -- sampling -------------------------------------------------------------------------------------


def draw(
    generator: Generator,
    rng: random.Random,
    split: str,
    difficulty: Callable[[random.Random], Difficulty],
    n: int,
    *,
    unique: bool = False,
    max_attempts: int | None = None,
) -> list[Example]:
    """Up to ``n`` examples of ``split``, each of the difficulty ``difficulty(rng)`` draws.

    Draws that hash into another split are dropped (the target is computed only for those kept).
    ``unique`` drops repeated inputs, so a small input space gives a smaller set (it stops after
    ``UNIQUE_PATIENCE`` draws in a row bring nothing new); a split that no draw reaches within
    ``max_attempts`` raises DataError.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    share = SPLITS[split][1] - SPLITS[split][0]
    max_attempts = max_attempts or int(20 * n / share) + 1000
    examples: list[Example] = []
    seen: set[str] = set()
    misses = 0  # draws since the last new example: a unique set of a small space stops early
    for _ in range(max_attempts):
        if len(examples) >= n or (unique and examples and misses >= UNIQUE_PATIENCE):
            break
        problem = generator.problem(rng, *difficulty(rng))
        text = generator.transform(problem)
        if split_of(text) != split or (unique and text in seen):
            misses += 1
            continue
        misses = 0
        seen.add(text)
        examples.append(Example(text, generator.solve(problem)))
    if not examples or (not unique and len(examples) < n):
        raise DataError(
            f"{generator.name}: drew only {len(examples)} of {n} {split} examples in {max_attempts} attempts; "
            f"the task's input space is too small (raise --length or --vocab)"
        )
    return examples


# -- curriculum -----------------------------------------------------------------------------------


class Curriculum:
    """The difficulty each training example is drawn at (Zaremba & Sutskever 2014, section 4).

    ``level`` is the naive strategy's current difficulty, made harder by :meth:`advance`.
    """

    def __init__(self, strategy: str, target: Difficulty) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"--curriculum must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy, self.target = strategy, target
        self.level: Difficulty = (1, 1) if self.uses_levels else target

    @property
    def uses_levels(self) -> bool:
        return self.strategy in ("naive", "combined")

    @property
    def at_target(self) -> bool:
        return self.level == self.target

    def draw(self, rng: random.Random) -> Difficulty:
        length, nesting = self.target
        if self.strategy == "baseline":
            return self.target
        if self.strategy == "mix" or (self.strategy == "combined" and rng.random() < MIX_SHARE):
            return rng.randint(1, length), rng.randint(1, nesting)
        return self.level

    def advance(self) -> bool:
        """Make the naive level harder: length + 1 up to the target, then nesting + 1 with length 1."""
        length, nesting = self.level
        if length < self.target[0]:
            self.level = (length + 1, nesting)
        elif nesting < self.target[1]:
            self.level = (1, nesting + 1)
        else:
            return False
        return True

    def state_dict(self) -> dict:
        return {"level": list(self.level)}

    def load_state_dict(self, state: dict) -> None:
        self.level = tuple(int(v) for v in state["level"])
