"""Imported once by the grader's forkserver, so that each forked worker starts warm.

papermill and its kernel machinery take seconds to import on a busy machine, and tiktoken a
moment to parse cl100k_base; paying that once per run instead of once per submission is most
of what makes a class of 30 quick to grade.
"""

import jupyter_client  # noqa: F401
import nbclient  # noqa: F401
import nbformat  # noqa: F401
import papermill  # noqa: F401
import papermill.engines  # noqa: F401

from unmasked.tokens import get_encoding

from . import checks, notebook, results, spec, worker  # noqa: F401

get_encoding("cl100k_base")
