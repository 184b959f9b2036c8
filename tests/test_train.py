"""Vocabulary, example encoding, evaluation and checkpoints (unmasked.vocab, unmasked.train)."""

import json

import pytest
import torch

from unmasked.sessions import generate_short_sessions, record_fields, record_to_json
from unmasked.train import (
    DEFAULT_CHECKPOINT, CheckpointError, TrainConfig, build_vocab, encode_example, evaluate, field_accuracy,
    fill_answers, load_checkpoint, make_batch, new_model, parse_record_fields, save_checkpoint, train_model,
)
from unmasked.vocab import SPECIALS, Vocab, split_chunks


@pytest.fixture(scope="module")
def sessions():
    return generate_short_sessions(120, seed=5)


@pytest.fixture(scope="module")
def vocab(sessions):
    return build_vocab(sessions)


def _contains(haystack, needle):
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


# ---------------------------------------------------------------------------- vocabulary


def test_vocab_round_trips_text_and_is_compact(sessions, vocab):
    for s in sessions[:20]:
        assert vocab.decode(vocab.encode(s.text)) == s.text
    assert vocab.size < 5_000  # far below cl100k's ~100k rows
    assert len({vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id}) == len(SPECIALS)
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


def test_every_record_value_copies_cleanly_from_the_session(sessions, vocab):
    """The record's values are the same token sequences in the JSON as in the session text."""
    for s in sessions:
        prompt, target = encode_example(s, vocab)
        for key, value in s.record.items():
            for item in value if isinstance(value, list) else [value]:
                piece = vocab.encode(item)
                assert _contains(prompt, piece), (key, item)
                assert _contains(target, piece), (key, item)


# ---------------------------------------------------------------------------- examples and batches


def test_encode_example_layout(sessions, vocab):
    prompt, target = encode_example(sessions[0], vocab)
    assert prompt[-1] == vocab.sep_id and target[-1] == vocab.eos_id
    assert vocab.decode(prompt[:-1]) == sessions[0].text
    assert vocab.decode(target[:-1]) == record_to_json(sessions[0].record)


def test_make_batch_pads_answers_with_eos_and_rows_with_pad(sessions, vocab):
    examples = [encode_example(s, vocab) for s in sessions[:4]]
    ids, answer, lengths = make_batch(examples, vocab, extra_eos=3)
    region = max(len(t) for _, t in examples) + 3
    assert torch.all(lengths == region)
    for i, (p, t) in enumerate(examples):
        assert ids[i, : len(p)].tolist() == p and not answer[i, : len(p)].any()
        assert ids[i, len(p) : len(p) + len(t)].tolist() == t
        assert torch.all(ids[i, len(p) + len(t) : len(p) + region] == vocab.eos_id)
        assert torch.all(ids[i, len(p) + region :] == vocab.pad_id)
    with pytest.raises(ValueError, match="does not fit"):
        make_batch(examples, vocab, answer_len=3)


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


class Oracle(torch.nn.Module):
    """A model known to be right: it puts all probability on the gold answer token."""

    def __init__(self, vocab, sessions):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))
        self.gold = {tuple(p): t for p, t in (encode_example(s, vocab) for s in sessions)}

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab.size)
        for b, row in enumerate(idx.tolist()):
            sep = row.index(self.vocab.sep_id)
            target = self.gold[tuple(row[: sep + 1])]
            for j in range(sep + 1, len(row)):
                k = j - sep - 1
                logits[b, j, target[k] if k < len(target) else self.vocab.eos_id] = 10.0
        return logits


@pytest.mark.parametrize("method", ["one_shot", "confidence"])
def test_evaluation_of_a_known_right_model_scores_100_percent(sessions, vocab, method):
    oracle = Oracle(vocab, sessions[:10])
    result = evaluate(oracle, vocab, sessions[:10], answer_len=200, method=method, batch_size=4, max_steps=4)
    assert result["accuracy"] == {k: 1.0 for k in result["accuracy"]}


def test_fill_answers_rejects_unknown_method(vocab):
    with pytest.raises(ValueError, match="method"):
        fill_answers(None, vocab, [[1]], 4, method="beam")


# ---------------------------------------------------------------------------- training and checkpoints


def _tiny_trained(sessions, vocab, steps=3):
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=steps, warmup=1, device="cpu")
    model = new_model(vocab, cfg)
    history = train_model(model, vocab, [encode_example(s, vocab) for s in sessions[:16]], cfg, progress=False)
    return model, history


def test_train_model_records_history(sessions, vocab):
    _, history = _tiny_trained(sessions, vocab)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert all(h["loss"] > 0 and h["tokens"] > 0 for h in history)


def test_checkpoint_round_trip(tmp_path, sessions, vocab):
    model, _ = _tiny_trained(sessions, vocab, steps=1)
    path = save_checkpoint(tmp_path / "diffusion.pt", model, vocab, {"answer_len": 200}, half=False)
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled classes
    assert isinstance(raw["vocab"]["tiktoken_ids"], list)
    loaded, vocab2, meta = load_checkpoint(path)
    assert meta == {"answer_len": 200} and vocab2.itos == vocab.itos
    ids = torch.tensor([encode_example(sessions[0], vocab)[0]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(ids), loaded(ids), atol=1e-5)


def test_broken_checkpoints_name_the_rebuild_command(tmp_path, sessions, vocab):
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(corrupt)
    model, _ = _tiny_trained(sessions, vocab, steps=1)
    path = save_checkpoint(tmp_path / "d.pt", model, vocab)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["wte.weight"] = blob["state_dict"]["wte.weight"][:-1]  # vocab and weights disagree
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(path)


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint (make checkpoint)")
def test_shipped_checkpoint_loads_and_is_small():
    assert DEFAULT_CHECKPOINT.stat().st_size <= 20 * 2**20
    model, vocab, meta = load_checkpoint()
    assert meta["answer_len"] > 0 and model.config.vocab_size == vocab.size


def test_command_line_trains_saves_and_scores(tmp_path):
    """`python -m unmasked.train` end to end, tiny: the checkpoint it writes loads with weights_only=True."""
    from unmasked.train import main

    args = ["--out", str(tmp_path), "--steps", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
            "--batch-size", "4", "--warmup", "1", "--limit", "40", "--eval-n", "3", "--eval-every", "0",
            "--methods", "one_shot", "--threads", "1", "--device", "cpu"]
    assert main(args) == 0
    model, vocab, meta = load_checkpoint(tmp_path / "diffusion.pt")
    assert meta["steps"] == 2 and meta["evaluations"][0]["n"] == 3
    report = json.loads((tmp_path / "diffusion.json").read_text())
    assert report["parameters"] == model.num_params()
    assert "| one_shot | 3 |" in (tmp_path / "diffusion.md").read_text()
    assert main(["--out", str(tmp_path), "--eval-only", "--eval-n", "2", "--methods", "one_shot",
                 "--update-report", "--device", "cpu"]) == 0
    assert load_checkpoint(tmp_path / "diffusion.pt")[2]["evaluations"][0]["n"] == 2


def test_cpu_preset_is_the_default_config():
    from unmasked.train import PRESETS

    cfg = TrainConfig()
    assert {k: getattr(cfg, k) for k in PRESETS["cpu"]} == PRESETS["cpu"]
