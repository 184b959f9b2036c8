"""A compact vocabulary over tiktoken cl100k ids, plus the special tokens a diffusion LM needs.

Why not use cl100k as is? It has about 100k tokens; a toy model with 256-wide embeddings would
spend 25M parameters on an embedding table whose rows it almost never sees. Our corpus uses a
few thousand distinct tokens, so we keep only those and give each a small id. Anything unseen
falls back to its bytes (cl100k has a token for each of the 256 bytes), and to [UNK] only
when even a byte token is missing from the vocabulary.

Tokens that copy cleanly. The model's job is to copy spans of a session into a JSON record.
Plain cl100k glues a leading space or quote onto a word (" postgres" in prose, "postgres" after
a JSON quote), so the same value would be two different token sequences in the two places,
and a small model would have to learn every pair. We split text before BPE so that a run of
letters, up to three digits, one punctuation mark or one run of spaces is always its own
chunk; then a value tokenizes the same wherever it appears. The cost is longer sequences
(about 1.5x cl100k on our sessions, measured in notebook 03).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import regex

from unmasked.tokens import get_encoding

SPECIALS = ("[PAD]", "[MASK]", "[EOS]", "[UNK]", "[SEP]")
ENCODING = "cl100k_base"

# cl100k's own pre-tokenizer, minus the optional space or mark glued in front of a word, and with
# punctuation one mark at a time: every value then starts and ends on a chunk boundary.
COPY_SAFE_PATTERN = r"\p{L}+|\p{N}{1,3}|[^\s\p{L}\p{N}]|\n+|[^\S\n]+"
_CHUNKS = regex.compile(COPY_SAFE_PATTERN)


def split_chunks(text: str) -> list[str]:
    """Cut text into the pieces that BPE then encodes one at a time (copy-safe boundaries)."""
    chunks = _CHUNKS.findall(text)
    if sum(len(c) for c in chunks) != len(text):  # the pattern must cover every character
        raise AssertionError("split_chunks lost characters; COPY_SAFE_PATTERN is broken")
    return chunks


def tiktoken_ids(text: str) -> list[int]:
    """cl100k ids of `text`, encoded chunk by chunk (see the module docstring for why)."""
    enc = get_encoding(ENCODING)
    out: list[int] = []
    for chunk in split_chunks(text):
        out.extend(enc.encode_ordinary(chunk))
    return out


class Vocab:
    """Maps cl100k ids to compact ids 0..size-1; the five specials come first.

    Stored in a checkpoint as plain lists (`to_dict`), so that `torch.load(weights_only=True)`
    can read it back.
    """

    def __init__(self, tiktoken_vocab: Iterable[int]):
        self.itos: list[int] = []  # compact id -> cl100k id (-1 for a special)
        seen = set()
        for tid in tiktoken_vocab:
            tid = int(tid)
            if tid < 0 or tid in seen:
                raise ValueError(f"cl100k ids must be distinct and non-negative, got {tid}")
            seen.add(tid)
            self.itos.append(tid)
        self.stoi = {tid: i + len(SPECIALS) for i, tid in enumerate(self.itos)}
        self.pad_id, self.mask_id, self.eos_id, self.unk_id, self.sep_id = range(len(SPECIALS))
        self.size = len(SPECIALS) + len(self.itos)
        enc = get_encoding(ENCODING)
        self._byte_ids = [self.stoi.get(enc.encode_single_token(bytes([b]))) for b in range(256)]

    # -- building and storing ------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, include_bytes: bool = True) -> Vocab:
        """The tokens that occur at least `min_count` times in `texts` (most frequent first)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[int] = Counter()
        for text in texts:
            counts.update(tiktoken_ids(text))
        ids = [
            tid
            for tid, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if n >= min_count
        ]
        if include_bytes:  # byte fallback: an unseen word is spelled out instead of becoming [UNK]
            enc = get_encoding(ENCODING)
            present = set(ids)
            ids += [
                t
                for t in (enc.encode_single_token(bytes([b])) for b in range(256))
                if t not in present
            ]
        return cls(ids)

    def to_dict(self) -> dict:
        return {
            "encoding": ENCODING,
            "specials": list(SPECIALS),
            "tiktoken_ids": list(self.itos),
            "pattern": COPY_SAFE_PATTERN,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        if not isinstance(data, dict) or "tiktoken_ids" not in data:
            raise ValueError("not a stored Vocab: expected a dict with 'tiktoken_ids'")
        if list(data.get("specials", ())) != list(SPECIALS) or data.get("encoding") != ENCODING:
            raise ValueError(
                f"stored vocab has specials {data.get('specials')} / encoding "
                f"{data.get('encoding')}; this code expects {list(SPECIALS)} / {ENCODING}"
            )
        if data.get("pattern", COPY_SAFE_PATTERN) != COPY_SAFE_PATTERN:
            raise ValueError("stored vocab was built with a different chunking pattern")
        return cls(data["tiktoken_ids"])

    # -- encoding ------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"Vocab.encode takes str, got {type(text).__name__}")
        enc = get_encoding(ENCODING)
        out: list[int] = []
        for tid in tiktoken_ids(text):
            cid = self.stoi.get(tid)
            if cid is not None:
                out.append(cid)
                continue
            byte_ids = [self._byte_ids[b] for b in enc.decode_single_token_bytes(tid)]
            out.extend(self.unk_id if b is None else b for b in byte_ids)
        return out

    def _piece(self, cid: int) -> bytes:
        if not 0 <= cid < self.size:
            raise ValueError(f"token id {cid} is outside this vocabulary (size {self.size})")
        if cid < len(SPECIALS):
            return SPECIALS[cid].encode()
        return get_encoding(ENCODING).decode_single_token_bytes(self.itos[cid - len(SPECIALS)])

    def decode(self, ids, skip_special: bool = False) -> str:
        """Text of compact ids; specials print as [MASK] etc. unless `skip_special`."""
        pieces = [self._piece(int(i)) for i in ids if not (skip_special and int(i) < len(SPECIALS))]
        return b"".join(pieces).decode("utf-8", errors="replace")

    def token_str(self, id: int) -> str:
        """A printable piece for display: "[MASK]" for the mask, spaces shown as they are."""
        return self._piece(int(id)).decode("utf-8", errors="replace")

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Vocab(size={self.size}, encoding={ENCODING})"
