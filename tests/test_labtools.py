"""The lab checks' cases catch the obvious wrong samplers and pass the right one."""

import pytest
import torch

from unmasked.labtools import (
    ContextModel,
    CountingModel,
    describe_outcome,
    one_pass_sampler,
    sampler_cases,
    sampler_outcome,
)
from unmasked.sampling import num_transfer_tokens, unmask_step


@torch.no_grad()
def right_sampler(model, prompt, length, steps, mask_id):
    x = torch.tensor(list(prompt) + [mask_id] * length)
    for k in num_transfer_tokens(length, steps, "linear"):
        x = unmask_step(model(x[None])[0], x, mask_id, k).x
    return x.tolist()


@torch.no_grad()
def answer_only_sampler(model, prompt, length, steps, mask_id):
    """Wrong: runs the model on the masked region alone, without the prompt."""
    x = torch.tensor([mask_id] * length)
    for k in num_transfer_tokens(length, steps, "linear"):
        x = unmask_step(model(x[None])[0], x, mask_id, k).x
    return list(prompt) + x.tolist()


CASES = sampler_cases(seed=0, n=6)


def test_cases_are_deterministic_and_well_formed():
    assert sampler_cases(seed=0, n=6) == CASES and sampler_cases(seed=1, n=6) != CASES
    for c in CASES:
        assert 2 <= c["steps"] <= c["length"] and c["mask_id"] not in c["prompt"]


@pytest.mark.parametrize("case", CASES)
def test_the_right_sampler_passes(case):
    outcome = sampler_outcome(right_sampler, case)
    assert outcome["ok"], describe_outcome(case, outcome)
    assert outcome["passes"] == case["steps"] and describe_outcome(case, outcome).endswith("OK")


@pytest.mark.parametrize("case", CASES)
def test_the_one_pass_sampler_fails_on_tokens_and_passes(case):
    outcome = sampler_outcome(one_pass_sampler, case)
    assert not outcome["ok"] and outcome["passes"] == 1
    assert outcome["tokens"] != outcome["expected_tokens"]  # caught even without counting passes
    message = describe_outcome(case, outcome)
    assert "ran the model 1 time(s); expected" in message and str(case["steps"]) in message


def test_a_sampler_that_drops_the_prompt_fails_somewhere():
    outcomes = [sampler_outcome(answer_only_sampler, c) for c in CASES]
    assert not all(o["ok"] for o in outcomes)
    bad = next((c, o) for c, o in zip(CASES, outcomes) if not o["ok"])
    assert "returned" in describe_outcome(*bad) and "generate gives" in describe_outcome(*bad)


def test_context_model_predictions_move_with_committed_tokens():
    model = ContextModel(12, mask_id=0, seed=3)
    a, b = torch.tensor([[5, 0, 0, 0]]), torch.tensor([[5, 7, 0, 0]])
    assert model(a).shape == (1, 4, 12)
    assert not torch.allclose(model(a)[0, 2], model(b)[0, 2])  # position 2 sees the commit at 1
    counted = CountingModel(model)
    counted(a), counted(torch.cat([a, b]))
    assert counted.passes == 2
    with pytest.raises(ValueError, match="mask_id"):
        ContextModel(5, mask_id=5)
