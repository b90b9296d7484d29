"""One trial in full: overview, metrics plot, code, environment, git, persisted outputs, steps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from tuixp.capture.environment import ENV_GROUPS
from tuixp.errors import StoreError, TuixpError
from tuixp.store import flags, queries
from tuixp.tui.data import TrialDetail, preview
from tuixp.tui.format import STATUS_TEXT, fmt_elapsed, fmt_number, fmt_when
from tuixp.tui.messages import DetailLoaded, OutputLoaded
from tuixp.tui.screens.scrolling import ScrollsActivePane
from tuixp.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp

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


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=repr)


class DetailScreen(ScrollsActivePane, Screen[None]):
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
        self._pickle_armed: str | None = None

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with TabbedContent(id="tabs", initial="overview"):
            for i, (pane_id, title) in enumerate(TABS, 1):
                with TabPane(f"{i} {title}", id=pane_id):
                    if pane_id == "metrics":
                        yield PlotextPlot(id="plot")
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
        parts: list[Any] = [
            Text("Parameters", style="bold underline"),
            params,
            Text(""),
            Text("Trial", style="bold underline"),
            _kv_table(rows),
        ]
        last = {
            name: series[self.trial_id][-1][1]
            for name, series in d.metrics.items()
            if self.trial_id in series and series[self.trial_id]
        }
        if last:
            parts += [
                Text(""),
                Text("Metrics (last epoch)", style="bold underline"),
                _kv_table([(k, fmt_number(v, 12)) for k, v in last.items()]),
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
        return sorted(self.detail.metrics) if self.detail else []

    def _show_plot(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        names = self.metric_names()
        if not names:
            plt.title("No metrics recorded for this trial")
            plot.refresh()
            return
        shown = names if self.metric_index == 0 else [names[self.metric_index - 1]]
        assert self.detail is not None
        for name in shown:
            for tid, series in sorted(self.detail.metrics[name].items()):
                epochs = [e for e, _ in series]
                values = [v for _, v in series]
                plt.plot(epochs, values, label=f"{name} #{tid}", marker="braille")
        which = "all metrics" if self.metric_index == 0 else shown[0]
        overlay = len({t for n in shown for t in self.detail.metrics[n]}) - 1
        plt.title(
            f"{which} by epoch"
            + (f" (+{overlay} marked)" if overlay > 0 else "")
            + "  [m: next metric]"
        )
        plt.xlabel("epoch")
        plot.refresh()

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

    def _show_outputs(self, d: TrialDetail) -> None:
        outputs = self.query_one("#output-list", OptionList)
        outputs.set_options(
            Option(f"{o['step']}  {o['format']}  {o['size']:,} bytes", id=o["step"])
            for o in d.persisted
        )
        text = (
            "Select an output and press p to preview it."
            if d.persisted
            else "No persisted outputs: mark a step with @ex.persist to keep its output."
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
        if outputs.highlighted is None:
            if not self.detail.persisted:
                return None
            outputs.highlighted = 0
        return self.detail.persisted[outputs.highlighted or 0]

    def action_preview(self) -> None:
        self.query_one(TabbedContent).active = "outputs"
        out = self._selected_output()
        if out is None:
            return
        if out["format"] == "pickle":
            self._pickle_armed = out["step"]
            self.query_one("#output-preview", Static).update(
                Text(
                    f"{out['step']} is a pickle: loading it runs code stored in the file. "
                    "Press P (shift+p) to load it anyway.",
                    style="yellow",
                )
            )
            return
        self._preview_worker(out)

    def action_load_pickle(self) -> None:
        out = self._selected_output()
        if out is None or out["format"] != "pickle" or self._pickle_armed != out["step"]:
            self.notify("Press p on a pickled output first.", severity="warning")
            return
        self._preview_worker(out)

    @on(OptionList.OptionSelected, "#output-list")
    def _output_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_preview()

    @work(thread=True, exclusive=True, group="output", exit_on_error=False)
    def _preview_worker(self, out: dict[str, Any]) -> None:
        try:
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
        from tuixp.tui.screens.compare import rerun

        if self.detail is not None:
            rerun(self.tuixp, self.experiment, self.detail.trial)

    def action_repeat(self) -> None:
        """``tuixp repeat`` of this trial in a child process: each step's output checked."""
        from tuixp.tui.screens.launch import start_repeat

        if self.detail is not None:
            start_repeat(self.tuixp, self.experiment, self.detail.trial)

    def action_next_metric(self) -> None:
        names = self.metric_names()
        self.metric_index = (self.metric_index + 1) % (len(names) + 1) if names else 0
        self.query_one(TabbedContent).active = "metrics"
        self._show_plot()


def _status_color(status: str) -> str:
    return {
        "succeeded": "green",
        "failed": "red",
        "running": "yellow",
        "interrupted": "magenta",
        "reused": "cyan",
    }.get(status, "")
