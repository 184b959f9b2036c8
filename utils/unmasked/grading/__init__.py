"""Grade a class's lab notebooks with papermill: a grade and feedback for every submission.

    python -m unmasked.grading labs/lab01_tokens.ipynb submissions/ --out grades -j 2

Each submission runs in a fresh kernel in its own scratch folder, with the lab's parameters
injected by the grader (fast mode, seed), a per-cell timeout and a hard wall-clock limit. After
the learner's cells, a cell the grader appends calls the learner's functions on inputs drawn
from a secret seed; the answers are judged outside the kernel (see `spec` and `checks`).

What a submission can and cannot do:
- With the sandbox (--sandbox auto on Linux with bubblewrap; see `sandbox`), its kernel runs in
  its own PID, network and user namespaces, sees a read-only system without the checks, the
  solutions, the grades or other submissions, writes only its scratch folder, and is capped in
  memory. Every process it starts dies with it. The worker that reads its result stays outside,
  so the result channel is out of its reach.
- The checks' inputs come from a secret seed per submission and the expected answers are
  computed in the grader; the kernel only reports what the learner's functions returned, as
  plain data. A raise or an unchanged argument counts only with right values beside it, so a
  report rewritten in the kernel gains nothing; an exercise that hands its call on to the
  course's own implementation scores 0 (`delegation`).
- The runner files each result under the submission it launched, checks its shape against the
  lab's outline, and gives every file named *.ipynb exactly one row.
- Without the sandbox (--sandbox none, or auto where namespaces are unavailable, with a loud
  warning), the kernel runs as the grader's user: the worker is a subreaper and kills what it
  left behind, and the runner restores result files that changed, but learner code could read
  what that user can read. Grade untrusted work with the sandbox.

Modules: spec (what a check is), checks (one module per lab), notebook (reading, injecting,
the appended cell), worker (one submission, in a subprocess), runner (the folder, in
parallel), sandbox (bubblewrap), delegation (exercises handed on to the course's code),
report (grades.csv, feedback, scores.html), instructor (overrides, roster), cluster (--dask),
procs (killing what a run started).
"""

from .checks import available, load
from .runner import Options, find_submissions, grade
from .spec import Call, Check, Outcome

__all__ = ["Call", "Check", "Options", "Outcome", "available", "find_submissions", "grade", "load"]
