"""A live training run a learner can watch: a progress bar by time, one figure redrawn in place.

`LiveTraining` is an `on_step` callback for `unmasked.train.train_model`. Every few seconds of
training it fills the records of a few held-out sessions in one forward pass and scores their
tokens by kind (`token_accuracy_by_kind`): the JSON scaffold, the [EOS] filler and the values.
A young model gets the scaffold right long before any value, and this is what makes that visible
in a run of a minute or two, when whole fields are still all wrong.

The figure is sent as a raw plotly mime bundle with a display id and updated through it:
`display(fig, display_id=True)` does not work for plotly figures, whose own `_ipython_display_`
ignores the id, so every update would add a copy below the last.
"""

from __future__ import annotations

import time

KIND_GROUPS = {
    "scaffold": ("key", "punctuation"),
    "[EOS] filler": ("special",),
    "values": ("value",),
}


def token_accuracy_by_kind(model, vocab, layout, sessions) -> dict[str, float]:
    """Share of record tokens that one-shot filling gets right, per kind of gold token
    (KIND_GROUPS).

    One forward pass over each fully masked record (`fill_answers(method="one_shot")`); kinds come
    from the gold record (`unmasked.sampling.json_token_roles`). Sessions whose record does not fit
    the slots are left out. The model's train/eval mode is kept.
    """
    from unmasked.sampling import json_token_roles
    from unmasked.train import encode_example, fill_answers

    if not sessions:
        raise ValueError("token_accuracy_by_kind needs at least one session")
    specials = (vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id)
    cases = []
    for s in sessions:
        try:
            cases.append(encode_example(s, vocab, layout))
        except ValueError:  # a value longer than its slot has no token-level gold: leave it out
            continue
    if not cases:
        raise ValueError("no session's record fits the layout's slots")
    was_training = model.training
    try:
        answers = fill_answers(
            model, vocab, [p for p, _ in cases], layout, method="one_shot", progress=False
        )
    finally:
        model.train(was_training)
    right = {k: 0 for k in KIND_GROUPS}
    total = {k: 0 for k in KIND_GROUPS}
    for (_, target), answer in zip(cases, answers):
        for kind, want, got in zip(
            json_token_roles(target, vocab.decode, specials), target, answer
        ):
            group = next((g for g, kinds in KIND_GROUPS.items() if kind in kinds), None)
            if group is not None:
                total[group] += 1
                right[group] += int(want == got)
    return {k: right[k] / total[k] for k in KIND_GROUPS if total[k]}


def live_figure(
    history: list[dict], checks: list[dict], *, budget_s: float | None = None, smooth: int = 10
):
    """Loss against step (left) and held-out token accuracy by kind against step (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=(
            "training loss (1/t-weighted masked cross-entropy)",
            "held-out record tokens right, one-shot (%)",
        ),
    )
    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    running = [
        sum(losses[max(0, i - smooth + 1) : i + 1]) / len(losses[max(0, i - smooth + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=losses,
            mode="lines",
            name="loss per step",
            line={"width": 1, "color": "#9ecae1"},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=running,
            mode="lines",
            name=f"loss, mean of last {smooth}",
            line={"width": 2, "color": "#08519c"},
        ),
        row=1,
        col=1,
    )
    for kind in KIND_GROUPS:
        pts = [(c["step"], 100 * c[kind]) for c in checks if kind in c]
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in pts], y=[a for _, a in pts], mode="lines+markers", name=kind
            ),
            row=1,
            col=2,
        )
    seconds = history[-1]["seconds"] if history else 0.0
    clock = f"{seconds:.0f} s of training" + (f" (budget {budget_s:.0f} s)" if budget_s else "")
    fig.update_layout(
        title=f"Live training: step {len(history)}, {clock}",
        height=380,
        margin={"l": 60, "r": 10, "t": 70, "b": 40},
        template="plotly_white",
    )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[0, 101], row=1, col=2)
    return fig


class LiveTraining:
    """`on_step` for train_model: a progress bar driven by the time budget, and `live_figure` in
    place.

    Every `check_every_s` seconds of training it scores `sessions` with token_accuracy_by_kind
    (call `check(0)` before training for the starting point). Checks run outside the training
    clock: train_model does not count time spent in on_step against the budget.
    """

    def __init__(
        self,
        model,
        vocab,
        layout,
        sessions,
        history: list[dict],
        *,
        budget_s: float,
        check_every_s: float = 15.0,
        redraw_every_s: float = 2.0,
        progress: bool = True,
    ):
        from tqdm.auto import tqdm

        self.model, self.vocab, self.layout, self.sessions = model, vocab, layout, sessions
        self.history, self.budget_s = history, budget_s
        self.check_every_s, self.redraw_every_s = check_every_s, redraw_every_s
        self.checks: list[dict] = []
        self.handle = None
        self._next_check = check_every_s
        self._last_draw = 0.0
        self.bar = tqdm(
            total=round(budget_s),
            unit="s",
            desc="training",
            disable=not progress,
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s of training{postfix}",
        )

    def check(self, step: int) -> dict:
        row = {
            "step": step,
            **token_accuracy_by_kind(self.model, self.vocab, self.layout, self.sessions),
        }
        self.checks.append(row)
        return row

    def __call__(self, step: int, loss: float, elapsed: float) -> None:
        self.bar.update(max(0.0, min(elapsed, self.budget_s) - self.bar.n))
        self.bar.set_postfix_str(f", step {step}, loss {loss:.3f}", refresh=False)
        if elapsed >= self._next_check:
            self.check(step)
            self._next_check = elapsed + self.check_every_s
            self.show()
        elif time.perf_counter() - self._last_draw >= self.redraw_every_s:
            self.show()

    def finish(self) -> None:
        """Score the last step (if not yet), close the bar, draw the final figure."""
        if self.history and (
            not self.checks or self.checks[-1]["step"] != self.history[-1]["step"]
        ):
            self.check(self.history[-1]["step"])
        self.bar.n = min(self.bar.total, round(self.history[-1]["seconds"])) if self.history else 0
        self.bar.close()
        self.show()

    def figure(self):
        return live_figure(self.history, self.checks, budget_s=self.budget_s)

    def show(self) -> None:
        self._last_draw = time.perf_counter()
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with jupyterlab
            return
        if get_ipython() is None:
            return
        from unmasked.viz import figure_bundle

        bundle = figure_bundle(self.figure())
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


def accuracy_frame(results: list[dict]):
    """Exact match per field (%) as a pandas table, one row per evaluation: a table that renders
    as one."""
    import pandas as pd

    from unmasked.train import FIELDS

    return pd.DataFrame(
        [
            {
                "model": r.get("label", r["method"]),
                "sessions": r["n"],
                **{k: round(100 * r["accuracy"][k], 1) for k in (*FIELDS, "all")},
            }
            for r in results
        ]
    ).set_index("model")
