"""Finding exercises whose body hands the call on to the course's own implementation.

The course ships reference implementations in `unmasked` (the checks use them to compute the
expected answers), and the lab imports from that package, so a learner can write
`return count_tokens(text)` and pass. That is not the exercise. This reads the learner's cells
(in the grader, never in the kernel) and finds, for each function a check calls, the last
definition in notebook order (`def` or an assignment) and whether it refers to the course's
implementation: any `unmasked.*` object with the same name, or one the lab lists in REFERENCES.

What it cannot see: a reference reached through strings (getattr, importlib, exec); the
sandbox and fresh inputs do not help against those either, and an instructor reading the
executed notebook will.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping


def _python(source: str) -> str:
    """A cell's source as Python (IPython magics turned into calls), or '' if it does not parse."""
    if source.lstrip().startswith("%%"):  # %%time, %%capture...: the body runs as Python
        source = source.lstrip().partition("\n")[2]
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:
        pass
    return source


def _aliases(tree: ast.AST, aliases: dict[str, str]) -> None:
    """Names bound by imports of `unmasked` anywhere in `tree`: alias -> dotted path."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name == "unmasked" or name.name.startswith("unmasked."):
                    if name.asname:
                        aliases[name.asname] = name.name
                    else:
                        aliases[name.name.split(".")[0]] = name.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "unmasked" or node.module.startswith("unmasked."):
                for name in node.names:
                    if name.name == "*":
                        aliases.setdefault("*", "")
                        aliases["*"] += f" {node.module}"
                    else:
                        aliases[name.asname or name.name] = f"{node.module}.{name.name}"
    # second pass: plain assignments of what the imports named (`ref = tokens.count_tokens`)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            path = _dotted(node.value, aliases)
            if path:
                aliases[node.targets[0].id] = path


def _dotted(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def _definitions(tree: ast.Module, func: str) -> list[ast.AST]:
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func:
            found.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (
                any(isinstance(t, ast.Name) and t.id == func for t in targets)
                and node.value is not None
            ):
                found.append(node.value)
    return found


def _defined_names(trees) -> set[str]:
    return {
        n.name
        for t in trees
        for n in t.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def delegations(
    sources: Iterable[str],
    funcs: Iterable[str],
    references: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, str]:
    """func -> the course object its last definition uses, for each func that delegates."""
    trees, aliases = [], {}
    for source in sources:
        try:
            tree = ast.parse(_python(source))
        except (SyntaxError, ValueError):
            continue
        trees.append(tree)
        _aliases(tree, aliases)
    references = references or {}
    found = {}
    for func in funcs:
        definitions = [d for tree in trees for d in _definitions(tree, func)]
        if not definitions:
            continue
        listed = {r.replace(":", ".") for r in references.get(func, ())}
        local = dict(aliases)
        _aliases(definitions[-1], local)
        starred = local.get("*", "").split()  # `from unmasked.tokens import *`: any of its names
        for node in ast.walk(definitions[-1]):
            path = _dotted(node, local) if isinstance(node, (ast.Name, ast.Attribute)) else None
            if path is None and isinstance(node, ast.Name) and starred:
                path = next(
                    (
                        f"{m}.{node.id}"
                        for m in starred
                        if f"{m}.{node.id}" in listed
                        or node.id == func
                        and node.id not in _defined_names(trees)
                    ),
                    None,
                )
            if (
                path
                and path.startswith("unmasked.")
                and (path.rsplit(".", 1)[-1] == func or path in listed)
            ):
                found[func] = path
                break
    return found
