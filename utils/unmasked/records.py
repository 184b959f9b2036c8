"""The record the models write: its fixed-width slot layout, its encoding, and reading it back.

Both models (the masked diffusion LM and its autoregressive twin) read the same prompt and write
the same answer region in the same slots, so everything about the record lives here, apart from
how a model is trained (unmasked.train) or samples (unmasked.sampling, unmasked.autoregressive).
"""

from __future__ import annotations

import json
import re

import torch

from unmasked.sessions.schema import SHORT_RECORD_FIELDS
from unmasked.vocab import Vocab

FIELDS = SHORT_RECORD_FIELDS  # the record's keys in order: one list for the generator and the model


class RecordLayout:
    """Where each field of the record sits in the answer region: one fixed-width slot per value.

    The answer is the record's JSON with every value padded by [EOS] to its slot's width:

        {"task": "fix the flaky test"[EOS][EOS]..., "database": "redis"[EOS]..., ...}

    Why fixed widths: the model fills a fully masked region, where every input is the same
    [MASK]. With free-running JSON, position 40 might be inside the task or the database
    depending on lengths the model cannot see yet. With slots, a position's learned position id
    (counted from [SEP], see unmasked.model) says which field it belongs to and where in it.
    Decoding drops the [EOS] filler, which leaves the canonical JSON.

    A list field named in `items` gets one slot per item instead of one for the whole list:

        "files": ["src/a.ts"[EOS]..., ", "src/b.ts"[EOS]..., [EOS][EOS]...]

    Why: paths share pieces (src/, /reviews, .ts), so in one long slot "the token after the one
    just copied" is ambiguous and the model splices paths together. With a slot per item, each
    position knows which file it copies and how far into it it is. Item i > 0 carries its own
    ", " so that empty trailing slots still decode to valid JSON. For such a field, `widths`
    gives the width of one item slot.
    """

    def __init__(self, widths: dict[str, int], items: dict[str, int] | None = None):
        if list(widths) != list(FIELDS) or any(
            not isinstance(w, int) or w < 2 for w in widths.values()
        ):
            raise ValueError(
                f"widths must give an int >= 2 for each of {FIELDS} in that order, got {widths}"
            )
        items = dict(items or {})
        if any(k not in FIELDS or not isinstance(n, int) or n < 1 for k, n in items.items()):
            raise ValueError(f"items must map fields of {FIELDS} to a slot count >= 1, got {items}")
        self.widths = dict(widths)
        self.items = items

    @classmethod
    def fit(cls, records, vocab: Vocab, margin: int = 2, per_item: bool = True) -> RecordLayout:
        """Slots as wide as the longest value in `records`, plus `margin` tokens.

        per_item: list fields get one slot per item, as many as the longest list.
        """
        lists = [k for k in FIELDS if per_item and any(isinstance(r[k], list) for r in records)]
        items = {k: max(1, max(len(r[k]) for r in records)) for k in lists}
        widths = {
            k: margin
            + max(len(ids) for r in records for ids in _value_pieces(r[k], k in items, vocab))
            for k in FIELDS
        }
        return cls(widths, items)

    def to_dict(self) -> dict:
        return {"widths": dict(self.widths), "items": dict(self.items)}

    @classmethod
    def from_dict(cls, data: dict) -> RecordLayout:
        return cls(
            {k: int(v) for k, v in data["widths"].items()},
            {k: int(v) for k, v in data.get("items", {}).items()},
        )

    def _pieces(self, vocab: Vocab):
        """(template ids, None) or (None, (key, item)) in order: '{"task": ', slot, ..., '}'.

        item is None for a whole-value slot, else the item's index in its list.
        """
        for i, key in enumerate(FIELDS):
            head = ("{" if i == 0 else ", ") + json.dumps(key) + ": "
            if key not in self.items:
                yield vocab.encode(head), None
                yield None, (key, None)
                continue
            yield vocab.encode(head + "["), None
            for item in range(self.items[key]):
                yield None, (key, item)
            yield vocab.encode("]"), None
        yield vocab.encode("}"), None

    def encode(self, record: dict, vocab: Vocab) -> list[int]:
        """The answer ids of a record. Raises ValueError if a value is longer than its slot(s)."""
        out: list[int] = []
        pieces: dict[str, list[list[int]]] = {}  # per field, encoded once for all its slots
        for ids, where in self._pieces(vocab):
            if where is None:
                out += ids
                continue
            key, item = where
            if key not in pieces:
                pieces[key] = _value_pieces(record[key], item is not None, vocab)
                if item is not None and len(pieces[key]) > self.items[key]:
                    raise ValueError(
                        f"{key} has {len(pieces[key])} items but the layout has {self.items[key]} "
                        "slots"
                    )
            rest = pieces[key][item or 0 :]
            value = rest[0] if rest else []
            if len(value) > self.widths[key]:
                raise ValueError(
                    f"{key} value of {len(value)} tokens does not fit its slot of "
                    f"{self.widths[key]}"
                )
            out += value + [vocab.eos_id] * (self.widths[key] - len(value))
        return out

    def spans(self, vocab: Vocab) -> list[tuple[str, int, int]]:
        """(field, start, end) of every slot in the answer region, in order."""
        out, pos = [], 0
        for ids, where in self._pieces(vocab):
            if where is None:
                pos += len(ids)
            else:
                out.append((where[0], pos, pos + self.widths[where[0]]))
                pos += self.widths[where[0]]
        return out

    def field_spans(self, vocab: Vocab) -> list[tuple[str, int, int]]:
        """(field, start, end) of every field's value: a list field's item slots are adjacent, so
        one span."""
        out: dict[str, list[int]] = {}
        for key, lo, hi in self.spans(vocab):
            out[key] = [out.get(key, [lo])[0], hi]
        return [(key, lo, hi) for key, (lo, hi) in out.items()]

    def slot_index(self, vocab: Vocab) -> list[int]:
        """For each answer position, the index of its field in FIELDS, or -1 for the JSON around
        the values."""
        out = [-1] * self.length(vocab)
        for key, lo, hi in self.spans(vocab):
            out[lo:hi] = [FIELDS.index(key)] * (hi - lo)
        return out

    def length(self, vocab: Vocab) -> int:
        return sum(
            len(ids) if where is None else self.widths[where[0]]
            for ids, where in self._pieces(vocab)
        )

    def __repr__(self) -> str:
        return f"RecordLayout({self.widths}, items={self.items})"


def _value_pieces(value, per_item: bool, vocab: Vocab) -> list[list[int]]:
    """The ids a value puts in its slots: the whole value, or one piece per item (", " before all
    but the first)."""
    if not per_item:
        return [vocab.encode(_value_json(value))]
    return [
        vocab.encode(("" if i == 0 else ", ") + _value_json(item)) for i, item in enumerate(value)
    ]


def _value_json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def encode_prompt(short_session, vocab: Vocab) -> list[int]:
    """The session's ids then [SEP]: what the model reads, and all that filling needs."""
    return vocab.encode(short_session.text) + [vocab.sep_id]


def encode_example(
    short_session, vocab: Vocab, layout: RecordLayout
) -> tuple[list[int], list[int]]:
    """(prompt ids ending with [SEP], answer ids: the record laid out in fixed-width slots)."""
    return encode_prompt(short_session, vocab), layout.encode(short_session.record, vocab)


def build_vocab(sessions) -> Vocab:
    """The compact vocabulary of a corpus: every token of its texts and records, plus bytes."""
    from unmasked.sessions import record_to_json

    return Vocab.build([s.text for s in sessions] + [record_to_json(s.record) for s in sessions])


def make_batch(examples: list[tuple[list[int], list[int]]], vocab: Vocab):
    """Pack (prompt, answer) pairs as [PAD...][prompt][answer]: every answer ends the row.

    Left padding puts all answers in the same columns, which keeps filling simple; it changes
    nothing for the model, whose attention ignores [PAD] keys and whose positions are relative
    (RoPE) or counted from [SEP]. Returns ids (B, T), answer (B, T) bool: the maskable, scored
    region, and its lengths (B,).
    """
    if len({len(t) for _, t in examples}) != 1:
        raise ValueError("every answer must have the same length (one RecordLayout)")
    T = max(len(p) + len(t) for p, t in examples)
    ids = torch.full((len(examples), T), vocab.pad_id, dtype=torch.long)
    answer = torch.zeros((len(examples), T), dtype=torch.bool)
    for i, (prompt, target) in enumerate(examples):
        row = prompt + target
        ids[i, T - len(row) :] = torch.tensor(row)
        answer[i, T - len(target) :] = True
    return ids, answer, answer.sum(dim=1)


def answer_text(ids, vocab: Vocab) -> str:
    """The record text of an answer region: specials (the slot filler, any leftover mask)
    dropped."""
    return vocab.decode(ids, skip_special=True)


_STRING_FIELD = r'"{key}": "((?:[^"\\]|\\.)*)"'
_LIST_FIELD = r'"{key}": \[((?:[^\]"\\]|"(?:[^"\\]|\\.)*")*)\]'


def parse_record_fields(text: str) -> dict[str, str | None]:
    """Per-field canonical strings (as sessions.record_fields) from generated text.

    Valid JSON is read as JSON. Otherwise each field is looked up on its own, so that one broken
    field does not zero the others; a field that cannot be found is None (scored wrong).
    """
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return {
                k: (
                    ", ".join(map(str, data[k]))
                    if isinstance(data.get(k), list)
                    else (str(data[k]) if k in data else None)
                )
                for k in FIELDS
            }
    except ValueError:
        pass
    out: dict[str, str | None] = {}
    for key in FIELDS:
        if key == "files":
            m = re.search(_LIST_FIELD.format(key=key), text)
            out[key] = (
                None if m is None else ", ".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
            )
        else:
            m = re.search(_STRING_FIELD.format(key=key), text)
            out[key] = None if m is None else m.group(1)
    return out


def field_accuracy(predicted: list[str], records: list[dict]) -> dict[str, float]:
    """Exact match per field, and "all" (every field right), over generated texts and gold
    records."""
    from unmasked.sessions import record_fields

    if len(predicted) != len(records) or not records:
        raise ValueError(
            f"need as many predictions as records (got {len(predicted)} and {len(records)}), at "
            "least 1"
        )
    hits = {k: 0 for k in FIELDS}
    all_right = 0
    for text, record in zip(predicted, records):
        gold, got = record_fields(record), parse_record_fields(text)
        right = [got[k] == gold[k] for k in FIELDS]
        for k, ok in zip(FIELDS, right):
            hits[k] += ok
        all_right += all(right)
    n = len(records)
    return {**{k: hits[k] / n for k in FIELDS}, "all": all_right / n}
