"""The notebook side of grading: read a submission, inject parameters, append the hidden checks.

Nothing here trusts the submission's structure. Its cells are copied source-only into a fresh
notebook (outputs, metadata and kernelspec dropped); the parameters are injected by us whether
or not the learner kept the `parameters` tag; the hidden checks go in as a last cell that only
exists in the grader's memory while the learner's cells run.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from dataclasses import dataclass

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from .spec import Call, Outcome

MIME = "application/vnd.unmasked.grading+json"
# cell metadata key: {"cell": learner's index} or {"role": "parameters"|"checks"}
META = "unmasked_grading"
MAX_SUBMISSION_BYTES = 100 * 2**20
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidSubmission(ValueError):
    """The file is not a notebook we can run; the message says why, for grades.csv."""


def read_submission(data: bytes) -> nbformat.NotebookNode:
    """A clean notebook rebuilt from the learner's cell sources, or InvalidSubmission."""
    if len(data) > MAX_SUBMISSION_BYTES:
        limit = MAX_SUBMISSION_BYTES >> 20
        raise InvalidSubmission(
            f"the file is {len(data) / 2**20:.0f} MB, over the {limit} MB limit"
        )
    if not data.strip():
        raise InvalidSubmission("the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidSubmission(
            f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(
            f"the file is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise InvalidSubmission("the file is JSON but not a Jupyter notebook (no list of cells)")
    for index, cell in enumerate(raw.get("cells") or []):
        if not isinstance(cell, dict):
            raise InvalidSubmission(f"cell {index + 1} is not a JSON object")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed notebooks
        raise InvalidSubmission(
            f"the notebook cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return clean(nb)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Source-only copy: each cell keeps its type, source and tags, and remembers its index."""
    makers = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
    cells, code = [], 0
    for index, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict):
            raise InvalidSubmission(f"cell {index + 1} is not a JSON object")
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if not isinstance(source, str):
            raise InvalidSubmission(f"cell {index + 1} has a source that is not text")
        source = _SURROGATE.sub("\ufffd", source)  # JSON allows "\ud800"; UTF-8 cannot hold it
        tags = (
            cell.get("metadata", {}).get("tags", [])
            if isinstance(cell.get("metadata"), dict)
            else []
        )
        tags = (
            [_SURROGATE.sub("\ufffd", t) for t in tags if isinstance(t, str)]
            if isinstance(tags, list)
            else []
        )
        new = makers.get(cell.get("cell_type"), new_raw_cell)(source)
        new.metadata["tags"] = (
            [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        )
        new.metadata[META] = {"cell": index}
        if new.cell_type == "code":  # Jupyter's [n] after Restart & Run All: code cells only
            code += 1
            new.metadata[META]["code_cell"] = code
        cells.append(new)
    return new_notebook(
        cells=cells, metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    )


def _assigns_only(source: str, names: set[str]) -> bool:
    """True for a cell of plain assignments that sets at least one of `names` (a parameters
    cell)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    assigned = set()
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            return False
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        assigned |= {t.id for t in targets if isinstance(t, ast.Name)}
    return bool(assigned & names)


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict) -> nbformat.NotebookNode:
    """Set `parameters` at the top, and again right after the learner's parameters cell.

    The learner's cell is found by its tag or, if the tag was deleted, by its content (plain
    assignments to the same names), so that a missing tag can't switch fast mode off.
    """
    source = "# Parameters injected by the grader\n" + "".join(
        f"{k} = {v!r}\n" for k, v in parameters.items()
    )

    def injected():
        cell = new_code_cell(source)
        cell.metadata["tags"] = ["injected-parameters"]
        cell.metadata[META] = {"role": "parameters"}
        return cell

    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    tagged = [i for i in code if "parameters" in cells[i].metadata.get("tags", [])]
    found = tagged or [i for i in code if _assigns_only(cells[i].source, set(parameters))]
    if found:
        cells.insert(found[0] + 1, injected())
    cells.insert(0, injected())
    nb.cells = cells
    return nb


# The cell appended after the learner's cells. It only calls the learner's functions and reports
# what they did; the verdicts are made in the grader. Each call gets a SIGALRM deadline.
_PROBE = r"""# Hidden checks, appended by the grader (unmasked.grading)
def _unmasked_probe(payload):
    import copy, dataclasses, importlib, json, math, signal, time
    from IPython.display import display

    spec = json.loads(payload)
    namespace = globals()

    def resolve(path):
        module, _, name = path.partition(":")
        value = importlib.import_module(module)
        for part in name.split(".") if name else ():
            value = getattr(value, part)
        return value

    def build(value):
        # arguments the kernel makes: {"__call__": "torch:tensor", "args": [...], "kwargs": {...}},
        # {"__ref__": "torch:float32"}, {"__last__": [a, b]} (all built in order, the last one kept)
        if isinstance(value, list):
            return [build(v) for v in value]
        if isinstance(value, dict):
            if "__ref__" in value:
                return resolve(value["__ref__"])
            if "__call__" in value:
                return resolve(value["__call__"])(*build(value.get("args", [])), **build(value.get("kwargs", {})))
            if "__last__" in value:
                return build(value["__last__"])[-1]
            return {k: build(v) for k, v in value.items()}
        return value

    def plain(value, depth=0):
        if depth > 20:
            return {"__repr__": "<nested too deep>"}
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, str):
            return value[:20000]
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v, depth + 1) for v in list(value)[:10000]]
        if isinstance(value, dict):
            return {str(k): plain(v, depth + 1) for k, v in list(value.items())[:10000]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
        for attr in ("tolist", "item"):
            method = getattr(value, attr, None)
            if callable(method):
                try:
                    return plain(method(), depth + 1)
                except Exception:
                    pass
        try:
            return {"__repr__": repr(value)[:500]}
        except Exception:
            return {"__repr__": "<unprintable>"}

    def describe(exc):
        try:
            message = str(exc)[:500]
        except Exception:
            message = "<unprintable>"
        return dict(error=type(exc).__name__, bases=[c.__name__ for c in type(exc).__mro__], message=message)

    class Late(BaseException):
        pass

    def on_alarm(signum, frame):
        raise Late()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    results, hung = [], set()
    try:
        for call in spec["calls"]:
            out = {"id": call["id"]}
            func = namespace.get(call["func"])
            name = call["func"]
            built = None
            if name not in hung and callable(func):  # outside the deadline: the first import of torch is slow
                try:
                    built = (build(copy.deepcopy(call["args"])), build(copy.deepcopy(call["kwargs"])))
                except Exception as exc:
                    built = exc
            if name in hung:
                out.update(error="Timeout", bases=["Timeout"], message="skipped: an earlier call timed out")
            elif func is None:
                out.update(error="NameError", bases=["NameError"], message=f"{name} is not defined: did its cell run?")
            elif not callable(func):
                kind = type(func).__name__
                out.update(error="TypeError", bases=["TypeError"], message=f"{name} is a {kind}, not a function")
            elif isinstance(built, Exception):
                out.update(describe(built))
                out["message"] = "could not build the arguments: " + out["message"]
            else:
                args, kwargs = built
                start = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, spec["call_timeout"])
                try:
                    value = func(*args, **kwargs)
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    out.update(value=plain(value), type=type(value).__name__)
                except Late:
                    hung.add(call["func"])
                    out.update(error="Timeout", bases=["Timeout"], message=f"over {spec['call_timeout']:g} s")
                except BaseException as exc:  # a bug in one function must not stop the other checks
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    out.update(describe(exc))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                out["seconds"] = round(time.perf_counter() - start, 4)
                if call.get("watch_args"):
                    out["args_after"] = plain(args)
            results.append(out)
    finally:
        signal.signal(signal.SIGALRM, previous)
    display({"%(mime)s": {"token": spec["token"], "results": results}}, raw=True)


_unmasked_probe(%(payload)r)
del _unmasked_probe
"""


@dataclass
class Probe:
    """The appended cell and what it must report back."""

    cell: nbformat.NotebookNode
    calls: list[tuple[str, Call]]  # (call id, call)
    token: str


def make_probe(checks, call_timeout_s: float) -> Probe:
    """One cell that makes every check's calls; ids are `check index:call index`."""
    calls = [
        (f"{i}:{j}", call) for i, check in enumerate(checks) for j, call in enumerate(check.calls)
    ]
    token = secrets.token_hex(16)
    payload = json.dumps(
        {
            "token": token,
            "call_timeout": float(call_timeout_s),
            "calls": [
                {
                    "id": cid,
                    "func": c.func,
                    "args": list(c.args),
                    "kwargs": dict(c.kwargs),
                    "watch_args": c.watch_args,
                }
                for cid, c in calls
            ],
        }
    )
    cell = new_code_cell(_PROBE % {"mime": MIME, "payload": payload})
    cell.metadata[META] = {"role": "checks"}
    return Probe(cell=cell, calls=calls, token=token)


class ProbeError(RuntimeError):
    """The hidden-checks cell did not report (cleanly); the message says what happened."""


def read_probe(cell: nbformat.NotebookNode, probe: Probe) -> dict[str, Outcome]:
    """Outcomes by call id, from the executed hidden-checks cell."""
    reports = [
        out.get("data", {}).get(MIME)
        for out in cell.get("outputs", [])
        if out.get("output_type") in ("display_data", "execute_result")
        and MIME in out.get("data", {})
    ]
    ours = [r for r in reports if isinstance(r, dict) and r.get("token") == probe.token]
    if len(ours) != 1 or len(reports) != 1:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            raise ProbeError(
                f"the hidden checks raised {errors[0].get('ename')}: "
                f"{str(errors[0].get('evalue'))[:200]}"
            )
        if not reports:
            raise ProbeError(
                "the hidden checks reported nothing (does the notebook replace display() or "
                "signal?)"
            )
        raise ProbeError(
            "the hidden checks' report was forged or repeated (the notebook writes into their cell)"
        )
    by_id = {r.get("id"): r for r in ours[0].get("results", []) if isinstance(r, dict)}
    missing = [cid for cid, _ in probe.calls if cid not in by_id]
    if missing:
        raise ProbeError(f"the hidden checks reported {len(by_id)} of {len(probe.calls)} calls")
    return {cid: Outcome.from_report(by_id[cid]) for cid, _ in probe.calls}


def cell_label(cell: nbformat.NotebookNode) -> str:
    """`code cell [3] (def count_text_tokens(text: st...)`: how feedback names a learner's cell.

    Code cells are counted alone, as Jupyter numbers them [1], [2], ... after Restart & Run All,
    so the label matches what the learner sees; Markdown cells have no number there.
    """
    meta = cell.metadata.get(META, {})
    if meta.get("role") == "checks":
        return "the hidden checks"
    if meta.get("role") == "parameters":
        return "the injected parameters"
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first = (first if len(first) <= 40 else first[:37] + "...").replace("`", "'")
    number = (
        f"code cell [{meta['code_cell']}]"
        if "code_cell" in meta
        else f"cell {meta.get('cell', -1) + 1}"
    )
    return f"{number} (`{first}`)" if first else number


def calls_exit(source: str) -> bool:
    """True when a cell calls exit() or quit(), which stop an IPython kernel (sys.exit does not)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("exit", "quit"):
                return True
            if isinstance(func, ast.Attribute) and func.attr == "ask_exit":
                return True
    return False


def cell_errors(nb: nbformat.NotebookNode) -> list[dict]:
    """Every learner cell that ended in an error: where, which exception, its message."""
    found = []
    for cell in nb.cells:
        if cell.metadata.get(META, {}).get("role") == "checks":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(
                    {
                        "cell": cell_label(cell),
                        "ename": str(out.get("ename")),
                        "evalue": str(out.get("evalue"))[:300],
                    }
                )
                break
    return found
