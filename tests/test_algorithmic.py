"""The algorithmic task generators: correct targets, disjoint splits, seeds, curriculum strategies."""

import contextlib
import io
import random
import re
from collections import Counter

import pytest

from rnnkit.data.algorithmic import (
    GENERATORS,
    SPLITS,
    Curriculum,
    GeneratorConfig,
    draw,
    make_generator,
    run_program,
    split_of,
)
from rnnkit.errors import ConfigError, DataError


def sample(config: GeneratorConfig, n: int = 200, split: str = "train", seed: int = 0, difficulty=None):
    generator = make_generator(config)
    fixed = difficulty or generator.target_difficulty
    return draw(generator, random.Random(seed), split, lambda _: fixed, n)


def test_sort_targets_are_the_inputs_sorted():
    examples = sample(GeneratorConfig("sort", 32, vocab=32))
    for e in examples:
        xs, ys = [int(t) for t in e.input.split(" ")], [int(t) for t in e.target.split(" ")]
        assert len(xs) == 32 and all(1 <= x <= 32 for x in xs)
        assert Counter(xs) == Counter(ys)
        assert all(a <= b for a, b in zip(ys, ys[1:]))
    assert len({e.input for e in examples}) == len(examples)


def test_add_targets_are_sums_of_two_k_digit_numbers():
    for e in sample(GeneratorConfig("add", 9)):
        a, b = e.input.split("+")
        assert len(a) == len(b) == 9 and a[0] != "0" and b[0] != "0"
        # column addition with carries, written out, as the independent check
        digits, carry = [], 0
        for x, y in zip(reversed(a), reversed(b)):
            carry, d = divmod(int(x) + int(y) + carry, 10)
            digits.append(str(d))
        expected = ("1" if carry else "") + "".join(reversed(digits))
        assert e.target == expected


def test_copy_with_the_papers_input_reversal_and_doubling():
    plain = sample(GeneratorConfig("copy", 7), n=20)
    assert all(e.input == e.target and len(e.input) == 7 and e.input.isdigit() for e in plain)
    reversed_ = sample(GeneratorConfig("copy", 7, reverse_input=True), n=20)
    assert all(e.input == e.target[::-1] for e in reversed_)
    both = sample(GeneratorConfig("copy", 7, reverse_input=True, double_input=True), n=20)
    assert all(e.input == e.target[::-1] * 2 for e in both)
    doubled_sort = sample(GeneratorConfig("sort", 4, vocab=9, double_input=True), n=5)
    for e in doubled_sort:
        tokens = e.input.split(" ")
        assert tokens[:4] == tokens[4:] and sorted(tokens[:4], key=int) == e.target.split(" ")


@pytest.mark.parametrize("length, nesting", [(1, 1), (4, 1), (4, 2), (6, 2), (3, 4)])
def test_execute_targets_are_what_python_prints(length, nesting):
    examples = sample(GeneratorConfig("execute", length, nesting=nesting), n=100)
    kinds = set()
    for e in examples:
        program = e.input
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # the real interpreter with the real print
            exec(program, {})
        assert e.target == out.getvalue().strip() + "."
        assert program.splitlines()[-1].startswith("print(") and program.count("print") == 1
        assert set(program) <= set(make_generator(GeneratorConfig("execute", 1)).symbols())
        numbers = [int(n) for n in re.findall(r"\d+", program)]
        assert max(numbers) <= max(10**length - 1, 4 * length)
        kinds.update(k for k, mark in [("loop", "for x in range("), ("if", " if "), ("mul", "*")] if mark in program)
        kinds.update(["assign"] if re.search(r"^[a-z]=", program, re.M) else [])
        if nesting == 1:
            assert len(program.splitlines()) <= 3
    assert kinds == {"loop", "if", "mul", "assign"}


def test_run_program_runs_without_builtins():
    assert run_program("a=3\nfor x in range(4):a+=2\nprint((a if 1<2 else 0))") == "11"
    with pytest.raises(NameError):
        run_program("print(open('/etc/passwd'))")


def test_splits_are_disjoint_by_construction():
    config = GeneratorConfig("sort", 3, vocab=6)  # 216 possible inputs: every split is hit many times
    sets = {split: {e.input for e in sample(config, n=400, split=split, seed=1)} for split in SPLITS}
    assert sets["train"].isdisjoint(sets["valid"]) and sets["train"].isdisjoint(sets["test"])
    assert sets["valid"].isdisjoint(sets["test"])
    assert len(sets["train"]) > 100 and len(sets["valid"]) > 5 and len(sets["test"]) > 5
    assert all(split_of(text) == split for split, texts in sets.items() for text in texts)
    shares = Counter(split_of(str(i)) for i in range(20000))
    assert shares["train"] / 20000 == pytest.approx(0.8, abs=0.02)


def test_unique_draws_of_a_small_space_stop_at_its_size():
    generator = make_generator(GeneratorConfig("add", 1))  # 100 sums a+b of one digit
    test = draw(generator, random.Random(0), "test", lambda _: (1, 1), 1000, unique=True)
    assert 3 <= len(test) <= 25 and len({e.input for e in test}) == len(test)
    tiny = make_generator(GeneratorConfig("sort", 1, vocab=1))  # one possible input: two splits are empty
    empty = next(s for s in SPLITS if s != split_of("1"))
    with pytest.raises(DataError, match="input space is too small"):
        draw(tiny, random.Random(0), empty, lambda _: (1, 1), 5)


def test_same_seed_same_examples_other_seed_other_examples():
    config = GeneratorConfig("execute", 3, nesting=2)
    assert sample(config, n=20, seed=5) == sample(config, n=20, seed=5)
    assert sample(config, n=20, seed=5) != sample(config, n=20, seed=6)


def test_curriculum_strategies():
    rng = random.Random(0)
    assert {Curriculum("baseline", (4, 2)).draw(rng) for _ in range(50)} == {(4, 2)}
    mix = Counter(Curriculum("mix", (4, 2)).draw(rng) for _ in range(2000))
    assert set(mix) == {(length, nesting) for length in range(1, 5) for nesting in (1, 2)}
    naive = Curriculum("naive", (3, 2))
    levels = [naive.level]
    while naive.advance():
        levels.append(naive.level)
    assert levels == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)] and naive.at_target
    combined = Curriculum("combined", (9, 1))
    draws = Counter(combined.draw(rng) for _ in range(5000))
    assert draws[(1, 1)] / 5000 == pytest.approx(0.8 + 0.2 / 9, abs=0.03)  # the level, or mix 1 time in 5
    restored = Curriculum("naive", (3, 2))
    restored.load_state_dict(Curriculum("naive", (3, 2)).state_dict() | {"level": [2, 2]})
    assert restored.level == (2, 2)


@pytest.mark.parametrize(
    "config, match",
    [
        (GeneratorConfig("sort", 4, vocab=5, nesting=2), "--nesting applies to the execute task only"),
        (GeneratorConfig("add", 4, vocab=5), "--vocab applies to the sort task only"),
        (GeneratorConfig("copy", 0), "--length must be an integer >= 1"),
        (GeneratorConfig("execute", 4, nesting=0), "--nesting must be in 1..12"),
        (GeneratorConfig("reverse", 4), "unknown task 'reverse'; available: sort, copy, add, execute"),
    ],
)
def test_bad_generator_options(config, match):
    with pytest.raises(ConfigError, match=re.escape(match)):
        make_generator(config)


def test_every_generator_is_listed_with_help():
    assert list(GENERATORS) == ["sort", "copy", "add", "execute"]
    assert all(cls.help for cls in GENERATORS.values())
    with pytest.raises(ConfigError, match="--curriculum must be one of"):
        Curriculum("random", (1, 1))
