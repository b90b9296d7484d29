"""One trial in full: overview, metrics plot, code, environment, git, persisted outputs, steps.

The curation keys (star, tags, note, name, delete, restore) are the trial table's
(``tuixp.tui.screens.curate``); the overview shows what they recorded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from tuixp.capture.environment import ENV_GROUPS
from tuixp.errors import StoreError, TuixpError
from tuixp.store import flags, queries
from tuixp.store.metric_names import SYSTEM_PREFIX, is_system_metric
from tuixp.store.objects import RUNS_CODE
from tuixp.tui.data import TrialDetail, preview
from tuixp.tui.format import STATUS_TEXT, fmt_elapsed, fmt_number, fmt_when
from tuixp.tui.messages import DetailLoaded, OutputLoaded
from tuixp.tui.plotting import SMOOTHING, PlotOptions
from tuixp.tui.screens.curate import Curated, CuratingScreen
from tuixp.tui.screens.scrolling import ScrollsActivePane
from tuixp.tui.widgets.metric_plot import MetricPlot, ordered_metrics
from tuixp.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tuixp.tui.messages import Annotated

TABS = [
    ("overview", "Overview"),
    ("metrics", "Metrics"),
    ("code", "Code"),
    ("environment", "Env"),
    ("git", "Git"),
    ("outputs", "Outputs"),
    ("steps", "Steps"),
]


def _kv_table(rows: list[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, v if isinstance(v, Text) else Text(str(v)))
    return table


def system_rows(points: dict[str, dict[int, Any]], trial_id: int) -> list[tuple[str, Any]]:
    """One line a system metric of the trial: its mean and max over the samples."""
    rows: list[tuple[str, Any]] = []
    for name in sorted(n for n in points if is_system_metric(n)):
        series = points[name].get(trial_id)
        if series is not None and len(series):
            values = series.value
            mean, top = float(values.mean()), float(values.max())
            rows.append(
                (
                    name[len(SYSTEM_PREFIX) :],
                    f"{fmt_number(mean, 8)}, {fmt_number(top, 8)} ({len(values)} samples)",
                )
            )
    return rows


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=repr)


class DetailScreen(ScrollsActivePane, CuratingScreen):
    """The detail of ``experiment`` trial ``trial_id``; marked trials overlay its metrics plot."""

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", show=True),
        Binding("1", "tab('overview')", "Overview", show=False),
        Binding("2", "tab('metrics')", "Metrics", show=False),
        Binding("3", "tab('code')", "Code", show=False),
        Binding("4", "tab('environment')", "Env", show=False),
        Binding("5", "tab('git')", "Git", show=False),
        Binding("6", "tab('outputs')", "Outputs", show=False),
        Binding("7", "tab('steps')", "Steps", show=False),
        Binding("m", "next_metric", "Metric", show=True),
        Binding("l", "plot_log", "Log scale", show=False),
        Binding("s", "plot_smooth", "Smoothing", show=False),
        Binding("w", "plot_x", "Epoch/time", show=False),
        Binding("p", "preview", "Preview", show=True),
        Binding("P", "load_pickle", "Load pickle", show=False),
        Binding("v", "compare_previous", "Vs previous", show=True),
        Binding("R", "rerun", "Re-run", show=False),
        Binding("X", "repeat", "Repeat & check", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, experiment: str, trial_id: int) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial_id = trial_id
        self.detail: TrialDetail | None = None
        self.metric_index = 0  # 0: every metric; n: the n-th metric alone
        self.plot_options = PlotOptions()
        self._pickle_armed: str | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with TabbedContent(id="tabs", initial="overview"):
            for i, (pane_id, title) in enumerate(TABS, 1):
                with TabPane(f"{i} {title}", id=pane_id):
                    if pane_id == "metrics":
                        yield MetricPlot(id="plot")
                    elif pane_id == "outputs":
                        yield OptionList(id="output-list")
                        with VerticalScroll(id="output-scroll"):
                            yield Static("", id="output-preview")
                    else:
                        with VerticalScroll(id=f"{pane_id}-scroll"):
                            yield Static("Loading…", id=f"{pane_id}-body")
        yield StatusBar(id="detail-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.experiment} #{self.trial_id}"
        self.load()

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        overlay = sorted(self.tuixp.marked(self.experiment))
        self._load_worker(overlay)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_worker(self, overlay: list[int]) -> None:
        try:
            detail = self.tuixp.reader.detail(self.experiment, self.trial_id, overlay)
        except TuixpError as exc:
            self.post_message(OutputLoaded("", f"Could not read trial {self.trial_id}: {exc}"))
            return
        self.post_message(DetailLoaded(detail))

    def store_changed(self) -> None:
        """The store changed: a running trial's detail is read again."""
        if self.detail is not None and self.detail.trial.get("status") == "running":
            self.load()

    def curated(self) -> Curated | None:
        if self.detail is None:
            return None
        a = self.detail.annotation
        return Curated(self.experiment, self.trial_id, a.name, a.note, a.tags, a.starred, a.deleted)

    def annotated(self, message: "Annotated") -> None:
        """This trial was annotated: read it again; deleted, back to the table (without it)."""
        if message.experiment != self.experiment or self.trial_id not in message.trial_ids:
            return
        if message.action == "delete" and self.is_current:
            self.app.pop_screen()
            self.notify(f"Trial {self.trial_id} deleted (D lists the deleted trials, u restores).")
        else:
            self.load()

    def tick(self) -> None:
        if self.detail is not None and self.detail.trial.get("status") == "running":
            self._show_overview(self.detail)  # queued or running: the time moves

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        d = message.detail
        first = self.detail is None
        self.detail = d
        self._show_overview(d)
        self._show_plot()
        if first:
            self._show_code(d)
            self._show_environment(d)
            self._show_git(d)
            self._show_outputs(d)
        self._show_steps(d)

    # -- panes -------------------------------------------------------------------------------
    def _show_overview(self, d: TrialDetail) -> None:
        t = d.trial
        status = t.get("status") or "?"
        started = t.get("started_at")
        finished = t.get("finished_at")
        if status == "running":  # queued until a step starts; its time counts from then
            starts = [s["started_at"] for s in d.steps if s.get("status") != "reused"]
            first = min((s for s in starts if s is not None), default=None)
            status = queries.shown_status(status, first)
            started = first or started
        if started is not None:
            end = finished.timestamp() if finished is not None else self.tuixp.clock()
            elapsed = fmt_elapsed(end - started.timestamp())
        else:
            elapsed = "—"
        status_text = Text(STATUS_TEXT.get(status, status), style=f"bold {_status_color(status)}")
        result = t.get("result")
        result_text = _json_text(result) if result is not None else "—"
        rows: list[tuple[str, Any]] = [
            ("status", status_text),
            ("result", result_text),
            ("started", fmt_when(started)),
            ("finished", fmt_when(finished)),
            (
                "elapsed",
                "—"
                if status == "queued"
                else elapsed + (" (running)" if status == "running" else ""),
            ),
            ("seed", t.get("seed")),
            ("host", f"{t.get('host')} pid {t.get('pid')}"),
            ("scheduler", t.get("scheduler") or "—"),
            ("script", t.get("script") or "—"),
            (
                "commit",
                (t.get("git_commit") or "—")[:12]
                + (" (uncommitted changes)" if t.get("git_dirty") else ""),
            ),
            ("flags", flags.text(t.get("changes"), t.get("notes"))),
        ]
        params = _kv_table([(k, _json_text(v)) for k, v in (t.get("params") or {}).items()])
        parts: list[Any] = annotation_parts(d)
        parts += [
            Text("Parameters", style="bold underline"),
            params,
            Text(""),
            Text("Trial", style="bold underline"),
            _kv_table(rows),
        ]
        last = {
            name: point[1]
            for name, series in d.points.items()
            if self.trial_id in series
            and not is_system_metric(name)
            and (point := series[self.trial_id].last) is not None
        }
        if last:
            parts += [
                Text(""),
                Text("Metrics (last epoch)", style="bold underline"),
                _kv_table([(k, fmt_number(v, 12)) for k, v in last.items()]),
            ]
        system = system_rows(d.points, self.trial_id)
        if system:
            parts += [
                Text(""),
                Text("System (sampled while it ran: mean, max)", style="bold underline"),
                _kv_table(system),
            ]
        if t.get("changes"):
            parts += [Text(""), Text("Changed since the previous trial", style="bold underline")]
            for c in t["changes"]:
                parts.append(Text(f"{c.get('message')}: {c.get('name')}", style="yellow"))
                parts.append(
                    Syntax(c.get("diff") or "", "diff", word_wrap=True, background_color="default")
                )
        if t.get("notes"):
            parts += [Text(""), Text("Notes", style="bold underline")]
            parts += [Text(f"• {n}") for n in t["notes"]]
        if t.get("error_type"):
            parts += [
                Text(""),
                Text("Error", style="bold underline"),
                Text(f"{t['error_type']}: {t.get('error_message')}", style="bold red"),
            ]
            if t.get("traceback"):
                parts.append(
                    Syntax(t["traceback"], "pytb", word_wrap=True, background_color="default")
                )
        self.query_one("#overview-body", Static).update(Group(*parts))

    def metric_names(self) -> list[str]:
        return ordered_metrics(self.detail.points) if self.detail else []

    def _show_plot(self) -> None:
        plot = self.query_one(MetricPlot)
        if self.detail is None:
            return
        names = self.metric_names()
        only = names[self.metric_index - 1] if 0 < self.metric_index <= len(names) else None
        trials = [self.trial_id] + sorted(
            {t for series in self.detail.points.values() for t in series} - {self.trial_id}
        )
        plot.show(self.detail.points, trials, self.plot_options, only)

    def _show_code(self, d: TrialDetail) -> None:
        if not d.code:
            body: Any = Text("No code recorded for this trial.")
        else:
            parts: list[Any] = []
            for step, source in d.code.items():
                parts.append(Text(step, style="bold underline"))
                parts.append(
                    Syntax(
                        source or "(source not available)",
                        "python",
                        line_numbers=True,
                        word_wrap=True,
                        background_color="default",
                    )
                )
                parts.append(Text(""))
            body = Group(*parts)
        self.query_one("#code-body", Static).update(body)

    def _show_environment(self, d: TrialDetail) -> None:
        env = d.environment
        parts: list[Any] = []
        for cat in (g.name for g in ENV_GROUPS if g.table):
            rec = env.get(cat) or {}
            if rec:
                parts.append(Text(cat, style="bold underline"))
                parts.append(
                    _kv_table(
                        [(k, v) for k, v in rec.items() if k != "flags" and v not in (None, "", [])]
                    )
                )
                parts.append(Text(""))
        gpus = env.get("gpu") or []
        parts.append(Text("gpu", style="bold underline"))
        parts.append(Text(", ".join(g.get("name", "?") for g in gpus) if gpus else "none"))
        parts.append(Text(""))
        packages = env.get("packages") or {}
        parts.append(Text(f"packages ({len(packages)})", style="bold underline"))
        parts.append(_kv_table(list(packages.items())))
        self.query_one("#environment-body", Static).update(Group(*parts))

    def _show_git(self, d: TrialDetail) -> None:
        git = d.environment.get("git") or {}
        rows = [
            ("repository", git.get("repository") or "—"),
            ("branch", git.get("branch") or ("(detached)" if git.get("detached") else "—")),
            ("commit", git.get("commit") or "—"),
            ("uncommitted", "yes" if git.get("dirty") else "no"),
        ]
        parts: list[Any] = [_kv_table(rows)]
        for note in git.get("notes") or []:
            parts.append(Text(f"• {note}", style="dim"))
        if git.get("untracked"):
            parts.append(Text("untracked: " + ", ".join(git["untracked"][:20]), style="dim"))
        if git.get("diff"):
            parts += [
                Text(""),
                Text("Uncommitted diff", style="bold underline"),
                Syntax(git["diff"], "diff", word_wrap=True, background_color="default"),
            ]
        self.query_one("#git-body", Static).update(Group(*parts))

    def _outputs(self) -> list[dict[str, Any]]:
        """The Outputs tab's entries: persisted outputs, then the logged artifacts."""
        if self.detail is None:
            return []
        arts = [
            {"step": f"artifact {a.name}", "format": "artifact", "artifact": a}
            for a in self.detail.artifacts
        ]
        return [*self.detail.persisted, *arts]

    def _show_outputs(self, d: TrialDetail) -> None:
        outputs = self.query_one("#output-list", OptionList)
        options = [
            Option(f"{o['step']}  {o['format']}  {o['size']:,} bytes", id=o["step"])
            for o in d.persisted
        ]
        options += [
            Option(Text(f"artifact  {a.name}  {a.kind}  {a.size:,} bytes"), id=f"artifact {a.name}")
            for a in d.artifacts
        ]
        outputs.set_options(options)
        text = (
            "Select an output or artifact and press p to preview it."
            if options
            else "No persisted outputs or artifacts: mark a step with @ex.persist to keep its "
            "output, or call ex.log_artifact(path) in a step."
        )
        self.query_one("#output-preview", Static).update(text)

    def _show_steps(self, d: TrialDetail) -> None:
        if not d.steps:
            self.query_one("#steps-body", Static).update("No step timings recorded.")
            return
        t0 = min((s["started_at"] for s in d.steps if s["started_at"]), default=None)
        total = max((s["elapsed_s"] or 0.0 for s in d.steps), default=0.0) or 1.0
        table = Table(box=None, padding=(0, 1), header_style="bold")
        table.add_column("step", no_wrap=True, min_width=max(len(s["step"]) for s in d.steps))
        table.add_column("status", no_wrap=True)
        table.add_column("start", justify="right", no_wrap=True)
        table.add_column("elapsed", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True, max_width=20)
        table.add_column("worker", no_wrap=True, overflow="ellipsis")
        errors = []
        for s in d.steps:
            start = (s["started_at"].timestamp() - t0.timestamp()) if t0 and s["started_at"] else 0
            elapsed = s["elapsed_s"] or 0.0
            bar = "█" * max(1, round(20 * elapsed / total))
            status = s["status"] or "?"
            label = (
                f"reused from #{s['reused_from']}" if s.get("reused_from") is not None else status
            )
            table.add_row(
                s["step"],
                Text(label, style=_status_color(status)),
                f"+{fmt_elapsed(start)}",
                fmt_elapsed(elapsed),
                Text(bar, style=_status_color(status)),
                s.get("worker") or "",
            )
            if s.get("error"):
                errors.append(Text(f"{s['step']}: {s['error']}", style="red"))
        body: Any = Group(table, Text(""), *errors) if errors else table
        self.query_one("#steps-body", Static).update(body)

    # -- outputs -----------------------------------------------------------------------------
    def _selected_output(self) -> dict[str, Any] | None:
        if self.detail is None:
            return None
        outputs = self.query_one("#output-list", OptionList)
        entries = self._outputs()
        if outputs.highlighted is None:
            if not entries:
                return None
            outputs.highlighted = 0
        return entries[outputs.highlighted or 0]

    def action_preview(self) -> None:
        self.query_one(TabbedContent).active = "outputs"
        out = self._selected_output()
        if out is None:
            return
        if out["format"] in RUNS_CODE:
            self._pickle_armed = out["step"]
            what = "a pickle" if out["format"] == "pickle" else "a whole torch module (pickled)"
            self.query_one("#output-preview", Static).update(
                Text(
                    f"{out['step']} is {what}: loading it runs code stored in the file. "
                    "Press P (shift+p) to load it anyway.",
                    style="yellow",
                )
            )
            return
        self._preview_worker(out)

    def action_load_pickle(self) -> None:
        out = self._selected_output()
        if out is None or out["format"] not in RUNS_CODE or self._pickle_armed != out["step"]:
            self.notify("Press p on a pickled output first.", severity="warning")
            return
        self._preview_worker(out)

    @on(OptionList.OptionSelected, "#output-list")
    def _output_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_preview()

    @work(thread=True, exclusive=True, group="output", exit_on_error=False)
    def _preview_worker(self, out: dict[str, Any]) -> None:
        try:
            if "artifact" in out:  # bounded, control characters shown as U+FFFD
                text = self.tuixp.reader.preview_artifact(out["artifact"])
            else:
                value = self.tuixp.reader.load_output(out["object_hash"], out["format"])
                text = preview(value)
        except (OSError, ValueError, StoreError) as exc:
            text = f"Could not read the output of {out['step']}: {exc}"
        except Exception as exc:  # noqa: BLE001 - unpickling user objects can raise anything
            text = f"Could not load the output of {out['step']}: {type(exc).__name__}: {exc}"
        self.post_message(OutputLoaded(out["step"], text))

    @on(OutputLoaded)
    def _output_loaded(self, message: OutputLoaded) -> None:
        if not message.step:
            self.query_one("#detail-status", StatusBar).problem = message.text
            return
        self.query_one("#output-preview", Static).update(Text(message.text))

    # -- actions -----------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_compare_previous(self) -> None:
        self.tuixp.compare_previous(self.trial_id, self.experiment)

    def action_rerun(self) -> None:
        from tuixp.tui.screens.rerun import rerun

        if self.detail is not None:
            rerun(self.tuixp, self.experiment, self.detail.trial)

    def action_repeat(self) -> None:
        """``tuixp repeat`` of this trial in a child process: each step's output checked."""
        from tuixp.tui.screens.progress import start_repeat

        if self.detail is not None:
            start_repeat(self.tuixp, self.experiment, self.detail.trial)

    def action_plot_log(self) -> None:
        """Log scale on every panel's y axis, or linear again."""
        self.plot_options.log = not self.plot_options.log
        self._plot_changed()

    def action_plot_smooth(self) -> None:
        """The next smoothing level: none, a trailing mean of 1%, of 10% of the points."""
        self.plot_options.smoothing = (self.plot_options.smoothing + 1) % len(SMOOTHING)
        self._plot_changed()

    def action_plot_x(self) -> None:
        """x by epoch, or by wall time since each trial's first point."""
        self.plot_options.x = "wall" if self.plot_options.x == "epoch" else "epoch"
        self._plot_changed()

    def _plot_changed(self) -> None:
        self.query_one(TabbedContent).active = "metrics"
        self._show_plot()

    def action_next_metric(self) -> None:
        names = self.metric_names()
        self.metric_index = (self.metric_index + 1) % (len(names) + 1) if names else 0
        self.query_one(TabbedContent).active = "metrics"
        self._show_plot()


def annotation_parts(d: TrialDetail) -> list[Any]:
    """The overview's first lines: the trial's name, star, tags, deletion and note (whole,
    wrapped), when it has any of them."""
    a = d.annotation
    rows: list[tuple[str, Any]] = []
    if a.name:
        rows.append(("name", Text(a.name, style="bold")))
    if a.starred:
        rows.append(("star", Text("★ starred", style="bold yellow")))
    if a.tags:
        rows.append(("tags", ", ".join(a.tags)))
    if a.deleted:
        rows.append(("deleted", Text(f"{fmt_when(a.deleted_at)} (u restores)", style="bold red")))
    if a.note:
        rows.append(("note", Text(a.note)))
    if not rows:
        return []
    return [Text("Annotations", style="bold underline"), _kv_table(rows), Text("")]


def _status_color(status: str) -> str:
    return {
        "succeeded": "green",
        "failed": "red",
        "running": "yellow",
        "interrupted": "magenta",
        "reused": "cyan",
    }.get(status, "")
