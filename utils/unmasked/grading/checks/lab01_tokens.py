"""Hidden checks for lab01_tokens: count_text_tokens, context_sizes, history_cost.

Inputs are drawn fresh from the grader's secret seed on every run, on top of a few fixed edge
cases, and include a dense and a sparse text on which characters / 4 is several-fold off (so
`len(text) // 4` and its rounding variants score 0); the reference answers come from
unmasked.tokens and a plain running sum here.
"""

from __future__ import annotations

import random

from unmasked.tokens import count_tokens

from ..spec import Check, isclose, leaves_args_unchanged, raises, returns

PARAMETERS = {"FAST": True, "SEED": 0}
# The course's own implementations: an exercise that hands its call on to one scores 0.
REFERENCES = {"count_text_tokens": ("unmasked.tokens.count_tokens",)}
CALL_TIMEOUT_S = 2.0  # each function is microseconds of work; 2 s allows for a loaded machine

_WORDS = (
    "the context window agent compaction summary tool call diff patch token cache turn history "
    "def return import class self None True False lambda yield async await print assert "
    "naïve café Straße 東京 日本語 données über 🙂 🚀 → ≤ ∑ π"
).split()
_PUNCT = [
    ".",
    ",",
    ":",
    ";",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "==",
    "->",
    "#",
    "'",
    '"',
    "`",
    "_",
    "-",
    "/",
]
_SPACES = [" ", " ", " ", "  ", "\n", "\t", "\n\n", "    "]
_SPECIALS = [
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|endofprompt|>",
]
# Text where "about 4 characters per token" is far off, so that a length heuristic fails.
# Dense: CJK, emoji, symbols and digits run near a token per character (or more).
_DENSE = list("東京日本語天気晴雨風雪読書込検索差分🙂🚀🔥✅→≤∑π") + [str(d) for d in range(10)]
# Sparse: deep indentation, one token for a run of many spaces.
_INDENTS = [" " * n for n in (24, 32, 40, 48)]


def random_text(rng: random.Random, n_pieces: int) -> str:
    """Words, code, numbers, unicode and odd whitespace: text a token counter must get right."""
    pieces = []
    for _ in range(n_pieces):
        kind = rng.random()
        if kind < 0.55:
            pieces.append(rng.choice(_WORDS))
        elif kind < 0.75:
            pieces.append(rng.choice(_PUNCT))
        elif kind < 0.9:
            pieces.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        else:
            pieces.append(
                "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyzXYZ0123_")
                    for _ in range(rng.randint(3, 14))
                )
            )
        pieces.append(rng.choice(_SPACES))
    return "".join(pieces).strip(" ")


def with_specials(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(_SPECIALS))
    return " ".join(words)


def random_turns(rng: random.Random, n: int) -> list[int]:
    return [
        rng.choice((0, rng.randint(1, 60), rng.randint(50, 4_000), rng.randint(1_000, 90_000)))
        for _ in range(n)
    ]


def dense_text(rng: random.Random, n_chars: int) -> str:
    """Characters that each cost about a token: characters / 4 undercounts several-fold."""
    return "".join(rng.choice(_DENSE) for _ in range(n_chars))


def sparse_text(rng: random.Random, n_lines: int) -> str:
    """Deep indentation around short words: characters / 4 overcounts several-fold."""
    words = ("x", "pass", "}", ")", "end")
    lines = (rng.choice(_INDENTS) + rng.choice(words) for _ in range(n_lines))
    return "\n".join(lines) + "\n"


def running_totals(turns: list[int]) -> list[int]:
    sizes, total = [], 0
    for n in turns:
        total += n
        sizes.append(total)
    return sizes


def build(rng: random.Random) -> list[Check]:
    texts = ["", "x", " "] + [random_text(rng, rng.randint(3, 60)) for _ in range(7)]
    special_texts = ["<|endoftext|>"] + [
        with_specials(rng, random_text(rng, rng.randint(2, 20))) for _ in range(3)
    ]
    turn_lists = [[], [rng.randint(1, 9_999)]] + [
        random_turns(rng, n) for n in rng.sample(range(2, 40), 5)
    ]
    prices = [round(rng.uniform(0.05, 75.0), rng.choice((2, 3))) for _ in turn_lists]
    negative = []
    for _ in range(3):
        turns = random_turns(rng, rng.randint(1, 8))
        turns.insert(rng.randint(0, len(turns)), -rng.randint(1, 5_000))
        negative.append((turns,))
    integer = ("int",)
    # drawn last, so that a seed keeps the inputs it drew before these were added
    texts += [dense_text(rng, rng.randint(12, 40)), sparse_text(rng, rng.randint(4, 12))]

    return [
        returns(
            "count_text_tokens counts cl100k_base tokens",
            2,
            "count_text_tokens",
            [(t,) for t in texts],
            [count_tokens(t) for t in texts],
            accept_types=integer,
            hint="Encode with tiktoken's cl100k_base encoding and return the length of the token "
            "list.",
        ),
        returns(
            "count_text_tokens counts special-token strings as text",
            1,
            "count_text_tokens",
            [(t,) for t in special_texts],
            [count_tokens(t) for t in special_texts],
            accept_types=integer,
            hint="enc.encode refuses special-token strings unless you pass disallowed_special=().",
        ),
        returns(
            "context_sizes returns the running totals",
            2,
            "context_sizes",
            [(turns,) for turns in turn_lists],
            [running_totals(turns) for turns in turn_lists],
            accept_types=("list",),
            hint="Turn k re-sends turns 1..k: keep a running total and append it after each turn.",
        ),
        leaves_args_unchanged(
            "context_sizes leaves its argument unchanged",
            1,
            "context_sizes",
            [(turns,) for turns in turn_lists[2:5]],
            expected=[running_totals(turns) for turns in turn_lists[2:5]],
            hint="Build a new list; the caller still needs the per-turn sizes.",
        ),
        raises(
            "context_sizes rejects a negative turn with ValueError",
            1,
            "context_sizes",
            negative,
            "ValueError",
            works=([(turn_lists[2],)], [running_totals(turn_lists[2])]),
            hint="A turn cannot remove tokens from the history: raise ValueError when a size is "
            "negative.",
        ),
        returns(
            "history_cost prices the re-sent history",
            2,
            "history_cost",
            [(turns, price) for turns, price in zip(turn_lists, prices)],
            [
                sum(running_totals(turns)) * price / 1_000_000
                for turns, price in zip(turn_lists, prices)
            ],
            compare=isclose(rel_tol=1e-9, abs_tol=1e-12),
            hint="Sum the context sizes (every turn pays for the whole history) and scale by price "
            "/ 1e6.",
        ),
    ]
