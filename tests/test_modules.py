"""The package's layering (issue #19): the sampler and the record code do not depend on training
code.

Each check runs in a fresh interpreter, because this process may already have imported
unmasked.train through another test.
"""

import subprocess
import sys

import pytest


def _imports_train(module: str, call: str = "") -> bool:
    code = f"import sys, {module}\n{call}\nprint('unmasked.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    "module",
    ["unmasked.sampling", "unmasked.records", "unmasked.checkpoints", "unmasked.autoregressive"],
)
def test_module_does_not_import_training_code(module):
    assert not _imports_train(module)


def test_the_sampler_experiments_do_not_import_training_code():
    """record_case imports the record encoding lazily; it must come from unmasked.records."""
    call = (
        "from unmasked.sessions import generate_short_sessions; "
        "from unmasked.records import build_vocab, RecordLayout; "
        "from unmasked.sampling import record_case; "
        "s = generate_short_sessions(4, seed=1); v = build_vocab(s); "
        "record_case(s[0], v, RecordLayout.fit([x.record for x in s], v))"
    )
    assert not _imports_train("unmasked.sampling", call)


def test_the_check_can_fail():
    assert _imports_train("unmasked.sampling", "import unmasked.train")


def test_train_re_exports_the_moved_names():
    from unmasked import checkpoints, records, train

    for name in (
        "FIELDS",
        "RecordLayout",
        "encode_prompt",
        "encode_example",
        "build_vocab",
        "make_batch",
        "answer_text",
        "parse_record_fields",
        "field_accuracy",
    ):
        assert getattr(train, name) is getattr(records, name), name
    for name in (
        "DEFAULT_CHECKPOINT",
        "REBUILD_HINT",
        "CHECKPOINT_FORMAT",
        "CheckpointError",
        "save_checkpoint",
        "load_checkpoint",
    ):
        assert getattr(train, name) is getattr(checkpoints, name), name
