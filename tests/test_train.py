"""Vocabulary, example encoding, evaluation and checkpoints (unmasked.vocab, unmasked.train)."""

import json

import pytest
import torch

from unmasked.sessions import generate_short_sessions, record_fields, record_to_json
from unmasked.train import (
    DEFAULT_CHECKPOINT,
    FIELDS,
    CheckpointError,
    RecordLayout,
    TrainConfig,
    answer_text,
    build_vocab,
    encode_example,
    evaluate,
    field_accuracy,
    fill_answers,
    load_checkpoint,
    make_batch,
    new_model,
    parse_record_fields,
    save_checkpoint,
    train_model,
)
from unmasked.vocab import SPECIALS, Vocab, split_chunks


@pytest.fixture(scope="module")
def sessions():
    return generate_short_sessions(120, seed=5)


@pytest.fixture(scope="module")
def vocab(sessions):
    return build_vocab(sessions)


@pytest.fixture(scope="module")
def layout(sessions, vocab):
    return RecordLayout.fit([s.record for s in sessions], vocab)


def _contains(haystack, needle):
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


# ---------------------------------------------------------------------------- vocabulary


def test_vocab_round_trips_text_and_is_compact(sessions, vocab):
    for s in sessions[:20]:
        assert vocab.decode(vocab.encode(s.text)) == s.text
    assert vocab.size < 5_000  # far below cl100k's ~100k rows
    assert len({vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id}) == len(
        SPECIALS
    )
    assert vocab.token_str(vocab.mask_id) == "[MASK]"


def test_unseen_words_fall_back_to_bytes_not_unk(vocab):
    text = "Zyxqwv überprüft ✓"
    ids = vocab.encode(text)
    assert vocab.unk_id not in ids and vocab.decode(ids) == text


def test_unk_when_even_bytes_are_missing():
    v = Vocab.build(["hello world"], include_bytes=False)
    ids = v.encode("hello qqq")
    assert v.unk_id in ids and v.decode(ids).startswith("hello")


def test_vocab_survives_to_dict_and_rejects_foreign_data(vocab):
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again.itos == vocab.itos and again.size == vocab.size
    with pytest.raises(ValueError):
        Vocab.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        Vocab.from_dict({**vocab.to_dict(), "specials": ["[MASK]"]})


def test_chunks_cover_text_and_cut_before_words():
    assert split_chunks("Edited src/api.py.") == ["Edited", " ", "src", "/", "api", ".", "py", "."]
    assert "".join(split_chunks("a  b\n\n  c,'d'")) == "a  b\n\n  c,'d'"


def test_every_record_value_copies_cleanly_from_the_session(sessions, vocab, layout):
    """The record's values are the same token sequences in the JSON as in the session text."""
    for s in sessions:
        prompt, target = encode_example(s, vocab, layout)
        for key, value in s.record.items():
            for item in value if isinstance(value, list) else [value]:
                piece = vocab.encode(item)
                assert _contains(prompt, piece), (key, item)
                assert _contains(target, piece), (key, item)


# ---------------------------------------------------------------------------- examples and batches


def test_encode_example_puts_each_value_in_its_fixed_slot(sessions, vocab, layout):
    slots = layout.slot_index(vocab)
    assert layout.items == {"files": 3}  # the longest list in these sessions has 3 paths
    for s in sessions[:20]:
        prompt, target = encode_example(s, vocab, layout)
        assert prompt[-1] == vocab.sep_id and vocab.decode(prompt[:-1]) == s.text
        assert len(target) == len(slots) == layout.length(vocab)  # one length for every record
        assert answer_text(target, vocab) == record_to_json(s.record)  # the filler decodes away
        pieces = {k: [] for k in FIELDS}
        for key, lo, hi in layout.spans(vocab):
            value = target[lo:hi]
            assert hi - lo == layout.widths[key] and set(slots[lo:hi]) == {FIELDS.index(key)}
            n = value.index(vocab.eos_id) if vocab.eos_id in value else len(value)
            assert all(t == vocab.eos_id for t in value[n:])  # filler only after the value
            pieces[key].append(vocab.decode(value[:n]))
        for key in FIELDS:
            if key == "files":  # one path per slot, ", " before all but the first, empty slots last
                text = [p for p in pieces[key] if p]
                assert len(pieces[key]) == 3 and pieces[key][: len(text)] == text
                assert json.loads("[" + "".join(text) + "]") == s.record[key]
                assert all(p.startswith(", ") for p in text[1:])
            else:
                assert json.loads(pieces[key][0]) == s.record[key]
    assert all(
        slot == -1 for slot, t in zip(slots, target) if vocab.decode([t]) in ('{"', "}", "[", "]")
    )


def test_layout_fits_the_longest_value_and_refuses_longer(sessions, vocab, layout):
    def item_lengths(files):  # tokens per item slot: ", " before all but the first path
        return [len(vocab.encode((", " if i else "") + json.dumps(f))) for i, f in enumerate(files)]

    longest = max(sessions, key=lambda s: max(item_lengths(s.record["files"])))
    assert layout.widths["files"] == max(item_lengths(longest.record["files"])) + 2
    whole = RecordLayout.fit([s.record for s in sessions], vocab, per_item=False)
    assert whole.items == {} and whole.widths["files"] == 2 + max(
        len(vocab.encode(json.dumps(s.record["files"]))) for s in sessions
    )
    for lay in (layout, whole):
        again = RecordLayout.from_dict(json.loads(json.dumps(lay.to_dict())))
        assert (again.widths, again.items) == (lay.widths, lay.items)
        assert answer_text(lay.encode(sessions[0].record, vocab), vocab) == record_to_json(
            sessions[0].record
        )
    assert (
        RecordLayout.from_dict({"widths": whole.widths}).items == {}
    )  # a layout saved before per-item slots
    too_long = dict(longest.record, database="x " * 40)
    with pytest.raises(ValueError, match="does not fit"):
        layout.encode(too_long, vocab)
    with pytest.raises(ValueError, match="3 slots"):
        layout.encode(dict(longest.record, files=["a.py", "b.py", "c.py", "d.py"]), vocab)
    with pytest.raises(ValueError, match="widths"):
        RecordLayout({"task": 4})
    with pytest.raises(ValueError, match="items"):
        RecordLayout(layout.widths, {"files": 0})


def test_make_batch_left_pads_so_answers_share_columns(sessions, vocab, layout):
    examples = [encode_example(s, vocab, layout) for s in sessions[:4]]
    ids, answer, lengths = make_batch(examples, vocab)
    A = layout.length(vocab)
    assert torch.all(lengths == A) and answer[:, -A:].all() and not answer[:, :-A].any()
    for i, (p, t) in enumerate(examples):
        assert ids[i, -A:].tolist() == t and ids[i, -A - len(p) : -A].tolist() == p
        assert torch.all(ids[i, : ids.shape[1] - A - len(p)] == vocab.pad_id)
    with pytest.raises(ValueError, match="same length"):
        make_batch([examples[0], (examples[1][0], examples[1][1][:-1])], vocab)


# ---------------------------------------------------------------------------- scoring


def test_scoring_gold_records_gives_100_percent(sessions):
    texts = [record_to_json(s.record) for s in sessions]
    acc = field_accuracy(texts, [s.record for s in sessions])
    assert all(v == 1.0 for v in acc.values())


def test_scoring_sees_a_wrong_field_and_survives_broken_json(sessions):
    s = sessions[0]
    wrong = dict(s.record, database="not-" + s.record["database"])
    acc = field_accuracy([record_to_json(wrong)], [s.record])
    assert acc["database"] == 0.0 and acc["task"] == 1.0 and acc["all"] == 0.0
    broken = record_to_json(s.record)[:-1].replace('"error": ', '"error": [')  # not JSON any more
    got = parse_record_fields(broken)
    gold = record_fields(s.record)
    assert got["task"] == gold["task"] and got["files"] == gold["files"] and got["error"] is None
    assert field_accuracy([""], [s.record])["all"] == 0.0


def test_files_misses_are_sorted_by_kind(sessions):
    from unmasked.train import FILES_MISS_KINDS, files_miss_kind, files_miss_kinds

    three = next(s.record for s in sessions if len(s.record["files"]) == 3)
    a, b, c = three["files"]
    written = {
        "right": [a, b, c],
        "right paths, wrong order": [b, a, c],
        "a path written twice": [a, a, b],
        "a path the session did not change": [a, b, "src/other.py"],
        "a changed path left out": [a, b],
    }
    texts = [record_to_json(dict(three, files=f)) for f in written.values()] + ["not json"]
    counts = files_miss_kinds(texts, [three] * len(texts))
    assert counts == dict.fromkeys(FILES_MISS_KINDS, 1) and list(counts) == [*written, "unreadable"]
    # the first kind that applies wins: a duplicate and a foreign path count as written twice
    assert (
        files_miss_kind(record_to_json(dict(three, files=[a, a, "src/other.py"])), three["files"])
        == "a path written twice"
    )
    with pytest.raises(ValueError, match="as many"):
        files_miss_kinds(texts, [three])


class Oracle(torch.nn.Module):
    """A model known to be right: it puts all probability on the gold answer token."""

    def __init__(self, vocab, layout, sessions):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))
        self.gold = {tuple(p): t for p, t in (encode_example(s, vocab, layout) for s in sessions)}
        self.calls = 0

    def forward(self, idx):
        self.calls += 1
        logits = torch.zeros(*idx.shape, self.vocab.size)
        for b, row in enumerate(idx.tolist()):
            sep = row.index(self.vocab.sep_id)
            start = next(
                i for i, t in enumerate(row) if t != self.vocab.pad_id
            )  # rows are left-padded
            target = self.gold[tuple(row[start : sep + 1])]
            logits[b, sep + 1 :, :][torch.arange(len(target)), torch.tensor(target)] = 10.0
        return logits


@pytest.mark.parametrize("method", ["one_shot", "slots", "adaptive"])
def test_evaluation_of_a_known_right_model_scores_100_percent(sessions, vocab, layout, method):
    oracle = Oracle(vocab, layout, sessions[:10])
    result = evaluate(
        oracle,
        vocab,
        sessions[:10],
        layout,
        method=method,
        batch_size=4,
        max_steps=4,
        keep_texts=True,
    )
    assert result["accuracy"] == {k: 1.0 for k in result["accuracy"]}
    assert result["texts"] == [record_to_json(s.record) for s in sessions[:10]]
    if method != "slots":  # the oracle is sure of everything: one pass writes the whole record
        assert result["passes"] == {"mean": 1.0, "median": 1, "max": 1}


def test_partial_credit_counts_valid_json_and_right_slot_tokens(sessions, vocab, layout):
    from unmasked.train import partial_credit

    records = [s.record for s in sessions[:2]]
    gold = [layout.encode(r, vocab) for r in records]
    assert partial_credit(gold, records, layout, vocab) == {
        "valid_json": 1.0,
        "token_accuracy": 1.0,
    }
    slots = [i for i, k in enumerate(layout.slot_index(vocab)) if k >= 0]
    blank = [
        t if i not in slots else vocab.eos_id for i, t in enumerate(gold[0])
    ]  # keys right, every value empty
    got = partial_credit([blank], records[:1], layout, vocab)
    filler = sum(gold[0][i] == vocab.eos_id for i in slots)
    assert (
        got["token_accuracy"] == pytest.approx(filler / len(slots)) and got["valid_json"] == 0.0
    )  # "task": , ...
    broken = gold[0][:-1] + [vocab.mask_id]  # no closing brace
    assert partial_credit([broken], records[:1], layout, vocab)["valid_json"] == 0.0


def test_slots_writes_each_field_left_to_right_and_stops_at_its_filler(sessions, vocab, layout):
    """One call per token of the longest field, counting the [EOS] that closes each slot; a
    list's items in turn."""
    session = next(s for s in sessions if len(s.record["files"]) == 3)
    oracle = Oracle(vocab, layout, [session])
    prompt, target = encode_example(session, vocab, layout)
    assert fill_answers(oracle, vocab, [prompt], layout, "slots") == [target]

    def calls(lo, hi):  # the value's tokens, then one [EOS] that fills the rest of the slot
        value = target[lo:hi]
        return value.index(vocab.eos_id) + 1 if vocab.eos_id in value else len(value)

    per_field = {k: 0 for k in FIELDS}
    for key, lo, hi in layout.spans(vocab):
        per_field[key] += calls(lo, hi)  # the items of "files" one after another, not side by side
    assert max(per_field.values()) == per_field["files"]  # so the count below tells the two apart
    assert oracle.calls == per_field["files"]


def test_field_spans_join_a_lists_item_slots(vocab, layout):
    spans = layout.spans(vocab)
    fields = layout.field_spans(vocab)
    assert [k for k, _, _ in fields] == list(FIELDS)
    files = [(lo, hi) for k, lo, hi in spans if k == "files"]
    assert len(files) == 3 and ("files", files[0][0], files[-1][1]) in fields
    assert all(
        a[1] == b[0] for a, b in zip(files, files[1:])
    )  # adjacent: nothing between the items
    assert [f for f in fields if f[0] != "files"] == [s for s in spans if s[0] != "files"]


def test_sampler_order_mask_hides_each_fields_end_as_the_slots_sampler_does(
    sessions, vocab, layout
):
    from unmasked.train import sampler_order_mask

    answers = torch.tensor([layout.encode(s.record, vocab) for s in sessions])
    gen = torch.Generator().manual_seed(0)
    masks = torch.cat([sampler_order_mask(answers, layout, vocab, gen) for _ in range(20)])
    answers = answers.repeat(20, 1)
    template = torch.tensor(layout.slot_index(vocab)) < 0
    assert not masks[:, template].any()  # the JSON around the values is written first
    for _, lo, hi in layout.field_spans(
        vocab
    ):  # read left to right, a field is visible up to a cut, masked after it
        m = masks[:, lo:hi]
        assert torch.equal(m, m.long().cummax(dim=1).values.bool())
    for _, lo, hi in layout.spans(vocab):
        seg, m = answers[:, lo:hi], masks[:, lo:hi]
        closed = ((seg == vocab.eos_id) & ~m).any(dim=1)
        assert not m[closed].any()  # a slot whose [EOS] shows is done
    # each field is cut after a step drawn uniformly: one step per value token, one per slot's
    # closing [EOS]
    session = next(s for s in sessions if len(s.record["files"]) == 3)
    gold = torch.tensor([layout.encode(session.record, vocab)])
    lo, hi = next((lo, hi) for key, lo, hi in layout.field_spans(vocab) if key == "files")
    draws = sampler_order_mask(gold.repeat(4000, 1), layout, vocab, gen)[:, lo:hi]
    states = torch.unique(draws, dim=0, return_counts=True)[1]
    steps = int((gold[0, lo:hi] != vocab.eos_id).sum()) + 3  # three paths, each closed by an [EOS]
    assert len(states) == steps + 1
    assert states.min() > 0.6 * 4000 / (steps + 1) and states.max() < 1.4 * 4000 / (steps + 1)
    with pytest.raises(ValueError, match="positions"):
        sampler_order_mask(answers[:, 1:], layout, vocab)


class InputRecorder(torch.nn.Module):
    """A model that predicts nothing (uniform logits) and keeps what it was shown."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size, self.dummy, self.seen = vocab_size, torch.nn.Parameter(torch.zeros(1)), []

    def forward(self, idx):
        self.seen.append(idx.clone())
        return torch.zeros(*idx.shape, self.vocab_size) + self.dummy


def test_sampler_rows_weigh_each_masked_token_as_the_rate_t_rows_do(sessions, vocab, layout):
    """With uniform logits every masked token costs log V, so a row's weighted loss is log V
    whichever mask it drew."""
    import math

    from unmasked.train import diffusion_step_loss

    ids, answer, lens = make_batch([encode_example(s, vocab, layout) for s in sessions[:32]], vocab)
    A = layout.length(vocab)
    template = torch.tensor(layout.slot_index(vocab)) < 0
    seen = {}
    for frac in (0.0, 1.0, 0.5):
        model = InputRecorder(vocab.size)
        cfg = TrainConfig(sampler_frac=frac)
        loss = diffusion_step_loss(
            model, ids, answer, lens, vocab, cfg, torch.Generator().manual_seed(3), layout
        )
        seen[frac] = model.seen[0][:, -A:]
        if (
            frac == 1.0
        ):  # every row: the JSON visible, and each masked token weighs 1 / (masked share)
            rows = (seen[frac] == vocab.mask_id).any(dim=1).float()
            assert not (seen[frac][:, template] == vocab.mask_id).any()
            assert loss.item() == pytest.approx(math.log(vocab.size) * rows.mean().item(), rel=1e-5)
    # a mixed batch: the rate-t rows are drawn first, so they are the frac=0 rows; the others are
    # sampler rows
    same = (seen[0.5] == seen[0.0]).all(dim=1)
    assert 0 < int(same.sum()) < len(same)
    assert not (seen[0.5][~same][:, template] == vocab.mask_id).any()
    with pytest.raises(ValueError, match="layout"):
        diffusion_step_loss(
            InputRecorder(vocab.size),
            ids,
            answer,
            lens,
            vocab,
            TrainConfig(sampler_frac=0.5),
            torch.Generator().manual_seed(3),
        )
    with pytest.raises(ValueError, match="sampler_frac"):
        TrainConfig(sampler_frac=1.5)


def test_fill_answers_rejects_unknown_method(vocab, layout):
    with pytest.raises(ValueError, match="method"):
        fill_answers(None, vocab, [[1]], layout, method="beam")


def test_methods_on_the_command_line_take_a_tau_for_adaptive_only():
    from unmasked.train import parse_methods

    assert parse_methods("one_shot,adaptive:0.5,adaptive,slots", 0.9) == [
        ("one_shot", 0.9),
        ("adaptive", 0.5),
        ("adaptive", 0.9),
        ("slots", 0.9),
    ]
    for bad in ("slots:0.5", "adaptive:x", "adaptive:1.5"):
        with pytest.raises(ValueError):
            parse_methods(bad, 0.9)


# ---------------------------------------------------------------------------- training and
# checkpoints


def _tiny_trained(sessions, vocab, steps=3):
    cfg = TrainConfig(
        n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=steps, warmup=1, device="cpu"
    )
    model = new_model(vocab, cfg)
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    history = train_model(
        model, vocab, [encode_example(s, vocab, layout) for s in sessions[:16]], cfg, progress=False
    )
    return model, history


def test_train_model_records_history(sessions, vocab):
    _, history = _tiny_trained(sessions, vocab)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert all(h["loss"] > 0 and h["tokens"] > 0 for h in history)
    cfg = TrainConfig(
        n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=1, device="cpu", sampler_frac=0.5
    )
    with pytest.raises(ValueError, match="layout"):  # before any step, not at the first batch
        train_model(new_model(vocab, cfg), vocab, [], cfg, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_draws_the_cpu_masks_and_fills_records(sessions, vocab, layout):
    """The masks come from a CPU generator on any device, so one seed gives one loss on CPU and
    GPU."""
    from unmasked.train import diffusion_step_loss

    cfg = TrainConfig(
        n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=3, warmup=1, device="cuda"
    )
    ids, answer, lens = make_batch([encode_example(s, vocab, layout) for s in sessions[:4]], vocab)
    losses = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = new_model(vocab, cfg).to(device)
        losses.append(
            diffusion_step_loss(
                model, ids, answer, lens, vocab, cfg, torch.Generator().manual_seed(1)
            ).item()
        )
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    model = new_model(vocab, cfg)
    history = train_model(
        model, vocab, [encode_example(s, vocab, layout) for s in sessions[:16]], cfg, progress=False
    )
    assert len(history) == 3 and next(model.parameters()).is_cuda
    assert evaluate(model, vocab, sessions[:2], layout, "slots")["n"] == 2


def test_checkpoint_round_trip(tmp_path, sessions, vocab, layout):
    model, _ = _tiny_trained(sessions, vocab, steps=1)
    path = save_checkpoint(
        tmp_path / "diffusion.pt", model, vocab, layout, {"answer_len": 200}, half=False
    )
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled classes
    assert isinstance(raw["vocab"]["tiktoken_ids"], list)
    loaded, vocab2, layout2, meta = load_checkpoint(path)
    assert meta == {"answer_len": 200} and vocab2.itos == vocab.itos
    assert (layout2.widths, layout2.items) == (layout.widths, layout.items)
    assert loaded.config == model.config
    ids = torch.tensor([sum(encode_example(sessions[0], vocab, layout), [])])
    with torch.no_grad():
        assert torch.allclose(model.eval()(ids), loaded(ids), atol=1e-5)


def test_broken_checkpoints_name_the_rebuild_command(tmp_path, sessions, vocab, layout):
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(corrupt)
    model, _ = _tiny_trained(sessions, vocab, steps=1)
    path = save_checkpoint(tmp_path / "d.pt", model, vocab, layout)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["wte.weight"] = blob["state_dict"]["wte.weight"][
        :-1
    ]  # vocab and weights disagree
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(path)
    blob = torch.load(save_checkpoint(path, model, vocab, layout), weights_only=True)
    del blob["layout"]  # made before record slots existed
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(path)


def test_shipped_checkpoint_loads_and_is_small(shipped_checkpoint):
    assert DEFAULT_CHECKPOINT.stat().st_size <= 20 * 2**20
    model, vocab, layout, meta = load_checkpoint()
    assert meta["answer_len"] == layout.length(vocab) and model.config.vocab_size == vocab.size


def test_shipped_checkpoint_was_made_from_this_corpus_and_layout(shipped_checkpoint):
    """What `make checkpoint` would build today has the same vocabulary and slots as the shipped
    file."""
    from unmasked.sessions import load_short_sessions

    _, vocab, layout, _ = load_checkpoint()
    train = load_short_sessions("train")
    fresh = build_vocab(train)
    assert fresh.itos == vocab.itos
    assert RecordLayout.fit([s.record for s in train], fresh).to_dict() == layout.to_dict()


def test_extra_training_sessions_follow_the_committed_ones_and_skip_held_out_texts():
    from unmasked.sessions import load_short_sessions
    from unmasked.train import extra_training_sessions

    train, test = load_short_sessions("train"), load_short_sessions("test")
    vocab = build_vocab(train)
    layout = RecordLayout.fit([s.record for s in train], vocab)
    extra, examples = extra_training_sessions(40, vocab, layout)
    assert examples == [
        encode_example(s, vocab, layout) for s in extra
    ]  # encoded once, while checking the fit
    assert (
        len(extra) == 40 and extra[0].id == f"short-0-{len(train):06d}"
    )  # the stream goes on after the corpus
    assert extra == generate_short_sessions(
        40, seed=0, start=len(train)
    )  # none of these needed skipping
    seen = {s.text for s in train} | {s.text for s in test}
    assert not seen & {s.text for s in extra}
    # a session that repeats a held-out text is skipped, and the next one taken instead
    skipped, _ = extra_training_sessions(40, vocab, layout, held_out=[extra[3]])
    assert len(skipped) == 40 and extra[3] not in skipped and skipped[:3] == extra[:3]
    assert skipped[-1] == generate_short_sessions(1, seed=0, start=len(train) + 40)[0]
    # so is one whose prompt is longer than the model's position table takes
    room = sorted(len(encode_example(s, vocab, layout)[0]) for s in extra)[20]
    short, _ = extra_training_sessions(10, vocab, layout, prompt_room=room)
    assert all(len(encode_example(s, vocab, layout)[0]) <= room for s in short)
    with pytest.raises(ValueError, match="non-negative"):
        extra_training_sessions(-1, vocab, layout)
    with pytest.raises(
        ValueError, match="fit this vocabulary"
    ):  # no prompt is this short: a clear error, no hang
        extra_training_sessions(2, vocab, layout, prompt_room=3)


def test_shipped_checkpoint_meets_the_target_with_adaptive_decoding(shipped_checkpoint):
    """The headline: adaptive decoding at tau = 0.9 reaches the bar on every field in the fewest
    forward passes per record of the methods that reach it, as re-scored on 500 held-out sessions
    with chapter 04's sampler (the report's decoding section), and a live fill of 64 reaches it too.

    The live fill checks the weights and today's decoder, not what the report says of them.
    Decoding is greedy, so 64 fixed sessions give one fixed score, not a draw; at the 90% bar it
    allows 6 misses per field. Slot filling, the headline before issue #19, also reaches the bar,
    in about 18 times the passes.
    """
    from unmasked.sessions import load_short_sessions
    from unmasked.train import TARGET_ACCURACY, method_label

    model, vocab, layout, _ = load_checkpoint()
    report = json.loads((DEFAULT_CHECKPOINT.parent / "diffusion.json").read_text())
    results = {method_label(r): r for r in report["decoding"]["evaluations"]}

    def reaches(r):
        return min(r["accuracy"][k] for k in FIELDS) >= TARGET_ACCURACY

    adaptive, slots = results["adaptive tau=0.9"], results["slots"]
    assert adaptive["n"] >= 500 and reaches(adaptive) and reaches(slots)
    assert adaptive is min(filter(reaches, results.values()), key=lambda r: r["passes"]["mean"])
    assert adaptive["passes"]["mean"] < slots["passes"]["mean"] / 10
    live = evaluate(model, vocab, load_short_sessions("test", limit=64), layout, "adaptive", 0.9)
    assert min(live["accuracy"][k] for k in FIELDS) >= TARGET_ACCURACY, live["accuracy"]
    assert live["passes"]["mean"] < 3, live["passes"]


def test_command_line_trains_saves_and_scores(tmp_path):
    """`python -m unmasked.train` end to end, tiny: the checkpoint it writes loads with
    weights_only=True."""
    from unmasked.train import main

    args = [
        "--out",
        str(tmp_path),
        "--steps",
        "2",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--limit",
        "40",
        "--eval-n",
        "3",
        "--eval-every",
        "1",
        "--quick-n",
        "3",
        "--methods",
        "one_shot",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    model, vocab, layout, meta = load_checkpoint(tmp_path / "diffusion.pt")
    assert meta["steps"] == 2 and meta["evaluations"][0]["n"] == 3
    # the quick scores during training use the headline method, with its passes beside them
    assert [q["method"] for q in meta["quick_evals"]] == ["adaptive tau=0.9"] * 2
    assert all(q["passes"] >= 1 for q in meta["quick_evals"])
    assert "During training (adaptive tau=0.9," in (tmp_path / "diffusion.md").read_text()
    assert (
        meta["train"]["sampler_frac"] == 0.0
    )  # the pure forward process unless --sampler-frac asks
    report = json.loads((tmp_path / "diffusion.json").read_text())
    assert report["parameters"] == model.num_params()
    assert "| one_shot | 3 |" in (tmp_path / "diffusion.md").read_text()
    assert "one slot per item for {'files': 3}" in (tmp_path / "diffusion.md").read_text()
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--eval-only",
                "--eval-n",
                "2",
                "--methods",
                "one_shot",
                "--update-report",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    # re-scoring writes the report's decoding section and leaves the checkpoint as it was
    assert load_checkpoint(tmp_path / "diffusion.pt")[3]["evaluations"][0]["n"] == 3
    decoding = json.loads((tmp_path / "diffusion.json").read_text())["decoding"]
    assert [r["n"] for r in decoding["evaluations"]] == [2] and "--eval-only" in decoding["command"]
    assert "## Decoding with chapter 04's sampler" in (tmp_path / "diffusion.md").read_text()


def test_command_line_continues_a_checkpoint_of_the_same_corpus_only(tmp_path):
    from unmasked.train import main

    def tiny(n_embd=32):
        return [
            "--steps",
            "2",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            str(n_embd),
            "--batch-size",
            "4",
            "--warmup",
            "1",
            "--eval-n",
            "2",
            "--eval-every",
            "0",
            "--methods",
            "one_shot",
            "--threads",
            "1",
            "--device",
            "cpu",
        ]

    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--out", str(first), "--limit", "40", *tiny()]) == 0
    before, _, _, _ = load_checkpoint(first / "diffusion.pt")
    # the continued model keeps the checkpoint's size whatever --n-embd says
    assert (
        main(
            [
                "--out",
                str(second),
                "--limit",
                "40",
                "--init-from",
                str(first / "diffusion.pt"),
                *tiny(64),
                "--sampler-frac",
                "0.5",
                "--extra-sessions",
                "6",
            ]
        )
        == 0
    )
    after, _, _, meta = load_checkpoint(second / "diffusion.pt")
    assert meta["train"]["sampler_frac"] == 0.5
    assert meta["extra_sessions"] == 6 and meta["n_train_sessions"] == 46
    assert (
        "the 40 committed ones and 6 generated after them" in (second / "diffusion.md").read_text()
    )
    assert after.config == before.config and meta["steps"] == 2
    assert meta["init_from"]["steps"] == 2 and meta["init_from"]["path"] == str(
        first / "diffusion.pt"
    )
    assert not torch.equal(after.wte.weight, before.wte.weight)  # it trained further
    assert "It continued `" in (second / "diffusion.md").read_text()
    third = tmp_path / "third"  # a third stage keeps the whole chain, oldest first
    assert (
        main(
            [
                "--out",
                str(third),
                "--limit",
                "40",
                "--init-from",
                str(second / "diffusion.pt"),
                *tiny(),
            ]
        )
        == 0
    )
    chain = load_checkpoint(third / "diffusion.pt")[3]["init_from"]
    assert chain["path"] == str(second / "diffusion.pt") and chain["init_from"]["path"] == str(
        first / "diffusion.pt"
    )
    report = (third / "diffusion.md").read_text()
    oldest, then = (
        f"It continued `{first / 'diffusion.pt'}`",
        f"Then it continued `{second / 'diffusion.pt'}`",
    )
    assert report.index(oldest) < report.index(then)
    with pytest.raises(CheckpointError, match="another corpus"):
        main(
            [
                "--out",
                str(tmp_path / "fourth"),
                "--limit",
                "30",
                "--init-from",
                str(first / "diffusion.pt"),
                *tiny(),
            ]
        )


def test_cpu_preset_is_the_default_config():
    from unmasked.train import PRESETS

    cfg = TrainConfig()
    assert {k: getattr(cfg, k) for k in PRESETS["cpu"]} == PRESETS["cpu"]


def test_gpu_preset_trains_the_same_size_of_model():
    """A checkpoint made on a GPU must be as cheap for a laptop to run as one made on a CPU."""
    from unmasked.train import PRESETS

    size = ("n_layer", "n_head", "n_embd")
    assert [PRESETS["gpu"][k] for k in size] == [PRESETS["cpu"][k] for k in size]


def test_shipped_report_is_what_the_checkpoint_records(tmp_path, shipped_checkpoint):
    """diffusion.md and diffusion.json are written from the checkpoint's own meta, not edited by
    hand."""
    from unmasked.train import _write_report

    model, _, _, meta = load_checkpoint()
    shipped = json.loads((DEFAULT_CHECKPOINT.parent / "diffusion.json").read_text())
    _write_report(tmp_path, meta, shipped.get("decoding"))  # a re-scoring lives in the report only
    for name in ("diffusion.md", "diffusion.json"):
        assert (tmp_path / name).read_text() == (DEFAULT_CHECKPOINT.parent / name).read_text(), name
    assert meta["parameters"] == model.num_params()


def test_command_line_trains_the_span_task_beside_the_record(tmp_path):
    """--span-task adds one span row per session, weighs them by --span-weight, and the report
    scores both tasks, with passes beside accuracy."""
    from unmasked.train import main

    args = ["--steps", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--limit", "40"]
    args += ["--batch-size", "4", "--warmup", "1", "--eval-n", "3", "--eval-every", "0"]
    args += ["--threads", "1", "--device", "cpu"]
    out = tmp_path / "spans"
    assert (
        main(
            [
                "--out",
                str(out),
                *args,
                "--methods",
                "adaptive",
                "--span-task",
                "--span-weight",
                "0.1",
            ]
        )
        == 0
    )
    meta = load_checkpoint(out / "diffusion.pt")[3]
    assert meta["train"]["span_task"] is True and meta["train"]["span_weight"] == 0.1
    (span,) = meta["span_evaluations"]
    assert span["task"] == "span" and span["length"] == meta["answer_len"] and span["n"] >= 1
    assert 1 <= span["passes"]["mean"] <= span["length"]
    report = (out / "diffusion.md").read_text()
    assert report.startswith("# The toy diffusion checkpoint trained on records and spans")
    assert "| adaptive tau=0.9 | " + str(span["n"]) + " | " + str(span["length"]) + " | " in report
    ar = tmp_path / "ar"
    assert main(["--out", str(ar), *args, "--arch", "autoregressive", "--span-task"]) == 0
    (span,) = load_checkpoint(ar / "autoregressive.pt")[3]["span_evaluations"]
    assert span["method"] == "autoregressive" and span["passes"]["mean"] == span["length"]


def test_span_rows_are_weighed_and_never_sampler_ordered(monkeypatch):
    from conftest import make_random_lm

    import unmasked.train as train
    from unmasked.autoregressive import next_token_loss
    from unmasked.records import RecordLayout, build_vocab, encode_example, make_batch
    from unmasked.sessions import generate_short_sessions
    from unmasked.spans import span_examples

    sessions = generate_short_sessions(4, seed=2)
    vocab = build_vocab(sessions)
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    A = layout.length(vocab)
    rows = [encode_example(s, vocab, layout) for s in sessions[:2]]
    rows += span_examples(sessions[2:], vocab, A)
    ids, answer, lengths = make_batch(rows, vocab)
    cfg = TrainConfig(span_task=True, span_weight=0.25, sampler_frac=1.0)
    assert train.row_weights(ids, vocab, cfg).tolist() == [1.0, 1.0, 0.25, 0.25]
    with pytest.raises(ValueError, match="span_weight"):
        TrainConfig(span_weight=0.0)
    # every row is sampler-ordered at sampler_frac=1, but the sampler's order is the record's
    # slots: the span rows are masked by the forward process instead
    ordered, real = [], train.sampler_order_mask

    def spy(answers, *args, **kwargs):
        ordered.append(answers.shape[0])
        return real(answers, *args, **kwargs)

    monkeypatch.setattr(train, "sampler_order_mask", spy)
    diffusion = make_random_lm(vocab)
    gen = torch.Generator().manual_seed(0)
    loss = train.diffusion_step_loss(diffusion, ids, answer, lengths, vocab, cfg, gen, layout)
    assert ordered == [2] and torch.isfinite(loss)
    monkeypatch.undo()
    causal = make_random_lm(vocab, causal=True)
    plain = next_token_loss(causal, ids, answer)
    assert torch.allclose(plain, next_token_loss(causal, ids, answer, torch.ones(4)))
    records_only = next_token_loss(causal, ids, answer, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    share = answer[:2, 1:].sum() / answer[:, 1:].sum()  # the divisor stays every token
    assert torch.allclose(records_only, next_token_loss(causal, ids[:2], answer[:2]) * share)


@pytest.mark.parametrize("arch", ["diffusion", "autoregressive"])
def test_span_checkpoints_continue_the_shipped_pair_and_report_both_tasks(tmp_path, arch):
    """data/checkpoints/spans/: each model of the shipped pair, trained further on records and
    spans; its report is written from its own meta and scores both tasks."""
    from conftest import shipped_checkpoint_path

    from unmasked.train import SPAN_CHECKPOINTS, _write_report

    path = shipped_checkpoint_path(SPAN_CHECKPOINTS / f"{arch}.pt")
    model, vocab, layout, meta = load_checkpoint(path)
    _, base_vocab, base_layout, _ = load_checkpoint(DEFAULT_CHECKPOINT.parent / f"{arch}.pt")
    assert vocab.itos == base_vocab.itos and layout.to_dict() == base_layout.to_dict()
    assert meta["init_from"]["path"] == f"data/checkpoints/{arch}.pt"
    assert meta["train"]["span_task"] and model.config.causal == (arch == "autoregressive")
    (span,) = meta["span_evaluations"]
    assert span["length"] == layout.length(vocab) and span["n"] >= 100
    (record,) = meta["evaluations"]
    assert record["n"] == 500 and "passes" in record
    _write_report(tmp_path, meta)
    for name in (f"{arch}.md", f"{arch}.json"):
        assert (tmp_path / name).read_text() == (SPAN_CHECKPOINTS / name).read_text(), name
