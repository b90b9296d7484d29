"""The live progress of launches (``ProgressScreen``) and what starts them.

A launch (``tuixp.tui.launcher``) runs ``tuixp run ... --progress jsonl`` (or ``tuixp repeat``)
as a child process. Its updates arrive as ``LaunchUpdated`` messages on the app, which applies
them to the launch on the UI thread (``handle_update``) and asks the store for the new trials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from tuixp.store.metric_names import is_system_metric
from tuixp.tui.format import fmt_elapsed
from tuixp.tui.launcher import Launch, LaunchRequest, TrialProgress
from tuixp.tui.plotting import MetricPoints, PlotOptions, plot_dots, prepare
from tuixp.values import format_value

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp


STATE_STYLE = {
    "starting": "yellow",
    "running": "bold yellow",
    "succeeded": "green",
    "failed": "bold red",
    "refused": "bold red",
    "interrupted": "magenta",
    "killed": "bold red",
    "waiting": "dim",
    "reused": "cyan",
    "reproduced": "bold green",
    "differs": "bold red",
    "not verified": "bold yellow",
}
TASK_ICON = {
    "waiting": "·",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "reused": "↺",
    "interrupted": "■",
}
STDERR_SHOWN = 6


class LaunchUpdated(Message):
    """One update of a launch from its reader threads: an event line, a stderr line, its exit."""

    def __init__(self, launch: Launch, kind: str, payload: Any) -> None:
        super().__init__()
        self.launch = launch
        self.kind = kind
        self.payload = payload


def handle_update(app: "TuixpApp", message: LaunchUpdated) -> None:
    """The app's part: apply the update on the UI thread, read the store when trials change."""
    launch = message.launch
    launch.apply(message.kind, message.payload)
    if message.kind == "exit" or (
        message.kind == "event"
        and ('"trial_started"' in message.payload or '"trial_finished"' in message.payload)
    ):
        app.poll(force=True)
    if message.kind == "exit":
        if launch.verdict is not None and launch.state != "refused":
            from tuixp.verdict import headline

            app.notify(
                headline(launch.verdict),
                title=f"Repeat #{launch.number}: {launch.state}",
                severity="information" if launch.state == "reproduced" else "error",
                timeout=10,
            )
        elif launch.state == "refused":
            app.notify(
                launch.message,
                title=f"Launch #{launch.number} refused",
                severity="error",
                timeout=8,
            )
        else:
            counts: dict[str, int] = {}
            for trial in launch.trials.values():
                counts[trial.status] = counts.get(trial.status, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"
            app.notify(
                summary,
                title=f"Launch #{launch.number} {launch.state}",
                severity="error" if launch.state in ("failed", "killed") else "information",
            )
    screen = app.screen
    if isinstance(screen, ProgressScreen):
        screen.launch_changed(launch)


def start_repeat(app: "TuixpApp", experiment: str, trial: dict[str, Any]) -> Launch:
    """``tuixp repeat`` of this trial in a child process, shown on the runs screen."""
    tid = int(trial["trial_id"])
    request = LaunchRequest(
        script=str(trial.get("script") or ""),
        store=app.reader.path,
        seed=trial.get("seed"),
        scheduler=str(trial.get("scheduler") or ""),
        experiment=experiment,
        repeat=tid,
    )
    launch = start_launch(app, request)
    app.push_screen(ProgressScreen(launch.number))
    return launch


def start_launch(app: "TuixpApp", request: LaunchRequest) -> Launch:
    launch = app.launches.new(request)

    def deliver(ln: Launch, kind: str, payload: Any) -> None:
        app.post_message(LaunchUpdated(ln, kind, payload))

    launch.start(deliver=deliver)
    return launch


# -- live progress ------------------------------------------------------------------------------
def _styled(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def render_launch(launch: Launch, now: float, width: int = 80) -> Group:
    """A launch as text: its command, its state, each trial and each of its tasks."""
    req = launch.request
    head = Text.assemble(
        (f"#{launch.number} ", "bold"),
        (req.experiment or "", "bold"),
        "  ",
        _styled(launch.state),
        " ",
        (f" {req.scheduler}", "dim"),
    )
    if launch.request.seed is not None:
        head.append(f"  seed {launch.request.seed}", style="dim")
    parts: list[Any] = [
        head,
        Text(
            req.describe() or "(parameters as recorded)",
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
        ),
    ]
    if launch.message:
        parts.append(Text(launch.message, style="bold red"))
    if launch.cancel_requested and not launch.done:
        parts.append(Text("cancelling: SIGINT sent, the trials end interrupted", style="magenta"))
    table = Table.grid(padding=(0, 1, 0, 0))
    table.add_column(width=3, no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", min_width=10, max_width=22)
    table.add_column(no_wrap=True, min_width=11)
    table.add_column(justify="right", no_wrap=True, min_width=7)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    for trial in sorted(launch.trials.values(), key=lambda t: t.trial_id):
        _trial_rows(table, trial, now)
    if not launch.trials and not launch.done:
        parts.append(Text("waiting for the first trial…", style="dim"))
    parts.append(table)
    if launch.verdict is not None:
        parts.append(render_verdict(launch.verdict, width))
    return Group(*parts)


def render_verdict(doc: dict[str, Any], width: int = 80) -> Text:
    """A repeat's verdict (``tuixp.repeat.render``), its headline coloured by the outcome."""
    from tuixp.verdict import render

    head, _, rest = render(doc, width).partition("\n")
    state = str(doc.get("verdict", "")).replace("_", " ")
    text = Text("\n")
    text.append(head, style=STATE_STYLE.get(state, "bold"))
    text.append("\n" + rest)
    return text


def _trial_rows(table: Table, trial: TrialProgress, now: float) -> None:
    shown = " ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    outcome = trial.error or (f"result {trial.result}" if trial.result is not None else shown)
    table.add_row(
        Text("●", style=STATE_STYLE.get(trial.status, "")),
        Text(f"trial #{trial.trial_id}", style="bold"),
        _styled(trial.status),
        fmt_elapsed(trial.elapsed_at(now)),
        Text(outcome, style="red" if trial.error else "dim"),
    )
    for task in trial.tasks.values():
        status = task.status
        label = _styled(
            status
            if status != "reused" or task.reused_from is None
            else f"reused #{task.reused_from}"
        )
        elapsed = task.elapsed_at(now)
        table.add_row(
            Text("  " + TASK_ICON.get(status, "?"), style=STATE_STYLE.get(status, "")),
            Text(task.step),
            label,
            fmt_elapsed(elapsed) if elapsed is not None else "",
            Text(task.error or "", style="red"),
        )


class ProgressScreen(Screen[None]):
    """Every launch of this session; the selected one's trials, tasks, metrics and stderr."""

    BINDINGS = [
        Binding("c", "cancel", "Cancel run", show=True),
        Binding("n", "new", "New launch", show=True),
        Binding("m", "next_metric", "Metric", show=True),
        Binding("escape", "back", "Back", show=True),
    ]
    TICK = 0.25  # seconds between redraws while a launch runs (its updates are coalesced)

    def __init__(self, number: int | None = None) -> None:
        super().__init__()
        self.number = number
        self.metric_index = 0
        self.shown_metric: str | None = None  # the metric the live plot shows
        self.drawn: dict[int, int] = {}  # points the live plot handed plotext, per trial
        self._dirty = True

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="progress-main"):
            yield OptionList(id="launch-list")
            with Vertical(id="progress-right"):
                with VerticalScroll(id="progress-scroll"):
                    yield Static("", id="progress-detail")
                yield PlotextPlot(id="progress-plot")
                yield Static("", id="progress-stderr")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "tuixp · runs"
        self._fill_list()
        self.query_one(OptionList).focus()
        self.set_interval(self.TICK, self._tick)
        self.redraw()

    @property
    def launch(self) -> Launch | None:
        items = self.tuixp.launches.items
        for launch in items:
            if launch.number == self.number:
                return launch
        return items[-1] if items else None

    def _fill_list(self) -> None:
        options = self.query_one(OptionList)
        highlighted = self.launch
        options.clear_options()
        for launch in self.tuixp.launches.items:
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append_text(
                Text.assemble(
                    (f"#{launch.number} ", "bold"),
                    (launch.request.experiment or "?", ""),
                    " ",
                    _styled(launch.state),
                    " ",
                )
            )
            n = len(launch.trials)
            if n:
                text.append(f"{n} trial{'s' if n != 1 else ''}", style="dim")
            options.add_option(Option(text, id=str(launch.number)))
        if highlighted is not None:
            options.highlighted = self.tuixp.launches.items.index(highlighted)

    @on(OptionList.OptionHighlighted, "#launch-list")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None and int(event.option.id) != self.number:
            self.number = int(event.option.id)
            self.metric_index = 0
            self.redraw()

    def launch_changed(self, launch: Launch) -> None:
        """Updates while a launch runs wait for the next tick; its end is drawn at once, so the
        screen never shows a finished launch as still running."""
        self._dirty = True
        if launch.done and launch is self.launch:
            self.redraw()

    def _tick(self) -> None:
        launch = self.launch
        if self._dirty or (launch is not None and not launch.done):
            self.redraw()

    def redraw(self) -> None:
        self._dirty = False
        self._fill_list()
        launch = self.launch
        detail = self.query_one("#progress-detail", Static)
        stderr = self.query_one("#progress-stderr", Static)
        if launch is None:
            detail.update(Text("No launches yet: n opens the launch form.", style="dim"))
            stderr.update("")
            self._plot(None)
            return
        detail.update(render_launch(launch, self.tuixp.clock(), detail.size.width or 80))
        tail = list(launch.stderr)[-STDERR_SHOWN:]
        body = Text("stderr ", style="bold dim")
        body.append("\n".join(tail) if tail else "(nothing yet)", style="dim")
        stderr.update(body)
        self._plot(launch)

    def metric_names(self, launch: Launch | None) -> list[str]:
        """The launch's metrics in the order they first arrived, the user's first: the first
        one shown (``m`` steps on) is the user's first metric, not a system sample (``sys/``)
        the sampler took before the step saved anything."""
        if launch is None:
            return []
        names: list[str] = []
        for trial in sorted(launch.trials.values(), key=lambda t: t.trial_id):
            names += [n for n in trial.metrics if n not in names]
        return sorted(names, key=is_system_metric)  # stable: arrival order within each

    def _plot(self, launch: Launch | None) -> None:
        widget = self.query_one("#progress-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        self.drawn = {}
        self.shown_metric = None
        names = self.metric_names(launch)
        if launch is None or not names:
            widget.display = False
            return
        widget.display = True
        name = self.shown_metric = names[self.metric_index % len(names)]
        # Cut to the plot's width (min and max a braille column, as the detail screen's plot):
        # a live run of a million points redraws as fast as one of a thousand.
        dots = plot_dots(widget.size.width or self.app.size.width)
        for trial in sorted(launch.trials.values(), key=lambda t: t.trial_id):
            series = trial.metrics.get(name)
            if series:
                xs, ys = prepare(MetricPoints.of(series.epoch, series.value), PlotOptions(), dots)
                self.drawn[trial.trial_id] = len(xs)
                plt.plot(xs, ys, label=f"#{trial.trial_id}", marker="braille")
        plt.title(f"{name} by epoch" + (" (m: next metric)" if len(names) > 1 else ""))
        widget.refresh()

    def action_next_metric(self) -> None:
        self.metric_index += 1
        self.redraw()

    def action_cancel(self) -> None:
        launch = self.launch
        if launch is None or launch.done:
            self.notify("That launch has ended.", severity="warning")
            return
        if launch.cancel():
            self.notify(f"SIGINT sent to launch #{launch.number}", title="Cancelling")
        self.redraw()

    def action_new(self) -> None:
        self.app.switch_screen(self.tuixp.launch_form())

    def action_back(self) -> None:
        self.dismiss()
