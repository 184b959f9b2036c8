"""Grade a class's lab notebooks with papermill: a grade and feedback for every submission.

    python -m unmasked.grading labs/lab01_tokens.ipynb submissions/ --out grades -j 2

Each submission runs in a fresh kernel in its own scratch folder, with the lab's parameters
injected by the grader (fast mode, seed), a per-cell timeout and a hard wall-clock limit. After
the learner's cells, a cell the grader appends calls the learner's functions on inputs drawn
from a secret seed; the answers are judged outside the kernel (see `spec` and `checks`).

What a submission can and cannot do (it runs as the same OS user as the grader; no separate
user or container is assumed):
- It cannot see the hidden inputs before its own code has run: the scratch copy never holds
  the checks, the inputs come from a secret seed per submission, and the expected answers are
  computed in the grader, never in the kernel. The check *definitions* ship in this package
  and are readable, by design: knowing them does not help without the inputs.
- Its HOME, cwd and temp dirs are its scratch folder, and nothing in its environment names
  the grades folder. A report forged into the checks' cell is rejected (status error).
- It could still, if it went looking, read what the grader's user can read, write where that
  user can write, or signal the grader's processes. The grader keeps every grade in memory and
  rewrites any result file that changed during the run, but for hostile submissions run it in
  a throwaway container or VM, or as a user with no write access to the grades folder.
- There is no memory cap: a notebook that exhausts memory ends as "kernel died" at best.

Modules: spec (what a check is), checks (one module per lab), notebook (reading, injecting,
the appended cell), worker (one submission, in a subprocess), runner (the folder, in
parallel), report (grades.csv, feedback, the score plot), procs (killing what a run started).
"""

from .checks import available, load
from .runner import Options, find_submissions, grade
from .spec import Call, Check, Outcome

__all__ = ["Call", "Check", "Options", "Outcome", "available", "find_submissions", "grade", "load"]
