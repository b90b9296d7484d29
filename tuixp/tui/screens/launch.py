"""The launch form (``LaunchScreen``): start new trials of an experiment from one of its trials.

The form is prefilled from a trial of the store (its script, parameters, scheduler, the graph's
steps: ``tuixp.store.queries.launch_sources``, one query); values are checked as they are typed
with the command line's own parser (a Python literal, or a bare word for a string). Enter starts
``tuixp run ... --progress jsonl`` as a child process (``tuixp.tui.launcher``): the script never
runs in the UI process. Its progress is ``tuixp.tui.screens.progress``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Select, Static

from tuixp.errors import TuixpError, UsageError
from tuixp.tui.data import StoreReader
from tuixp.tui.launcher import LaunchRequest
from tuixp.tui.screens.progress import ProgressScreen, start_launch
from tuixp.values import format_value, parse_assignment, parse_value, split_values

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp


SCHEDULERS = ("threads", "processes", "sync", "distributed")


# -- parsing what is typed: the command line's rules (tuixp.values) -----------------------------
def check_value(text: str, name: str, previous: Any = None) -> tuple[str, str]:
    """(css class, hint) for a value as typed: '' ok, '-warning' type changed, '-invalid'."""
    if not text.strip():
        return "", "not passed"
    try:
        value = parse_value(text, name)
    except UsageError as exc:
        return "-invalid", str(exc).split(": ", 1)[-1]
    kind = "None" if value is None else type(value).__name__
    if previous is not None and not _same_kind(previous, value):
        return "-warning", f"{kind}, was {type(previous).__name__}"
    return "", kind


def check_grid(text: str, name: str, previous: Any = None) -> tuple[str, str]:
    if not text.strip():
        return "", ""
    items = split_values(text)
    if any(not item.strip() for item in items):
        return "-invalid", "an empty value in the grid"
    kinds = []
    for item in items:
        try:
            value = parse_value(item, name)
        except UsageError as exc:
            return "-invalid", str(exc).split(": ", 1)[-1]
        if previous is not None and not _same_kind(previous, value):
            return "-warning", f"{item.strip()} is {type(value).__name__}"
        kinds.append(type(value).__name__)
    return "", f"{len(items)} values"


def _same_kind(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return True
    return type(a) is type(b)


def check_scheduler(text: str) -> tuple[str, str]:
    value = text.strip()
    if not value or value in SCHEDULERS or value.startswith("tcp://"):
        return "", ""
    return "-invalid", "threads, processes, sync, distributed or tcp://HOST:PORT"


# -- what the form needs from the store ---------------------------------------------------------
@dataclass
class LaunchChoice:
    """An experiment the store knows a script for, and the trial the form starts from."""

    experiment: str
    script: str
    trial_id: int
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    scheduler: str | None = None
    steps: list[str] = field(default_factory=list)


def read_choices(reader: StoreReader, prefer: tuple[str, int] | None) -> list[LaunchChoice]:
    """Experiments with a recorded script, most recent first; each from its latest trial (or
    from ``prefer``, the trial the person had selected). One connection, one query
    (``tuixp.store.queries.launch_sources``)."""
    return [
        LaunchChoice(
            s["experiment"],
            s["script"],
            int(s["trial_id"]),
            s["params"],
            s["seed"],
            s["scheduler"],
            s["steps"],
        )
        for s in reader.launch_sources(prefer)
        # the form launches an experiment by its name, which an Experiment requires to be an
        # identifier (an imported store may hold others)
        if str(s["experiment"]).isidentifier()
    ]


# -- messages ----------------------------------------------------------------------------------
class ChoicesLoaded(Message):
    def __init__(self, choices: list[LaunchChoice], error: str | None) -> None:
        super().__init__()
        self.choices = choices
        self.error = error


# -- the form ----------------------------------------------------------------------------------
class ParamRow(Horizontal):
    """One parameter: its value, optional grid values, and what the typing parses to."""

    def __init__(self, name: str, previous: Any, index: int) -> None:
        super().__init__(classes="param-row")
        self.param = name
        self.previous = previous
        self.index = index

    def compose(self) -> ComposeResult:
        yield Label(self.param, classes="param-name")
        # A recorded None is typed back as None: an empty field would mean "not passed" and
        # the launch would silently use the parameter's default instead.
        yield Input(
            format_value(self.previous),
            placeholder="value",
            classes="param-value",
            id=f"value-{self.index}",
        )
        yield Input("", placeholder="grid: v1,v2,…", classes="param-grid", id=f"grid-{self.index}")
        yield Static("", classes="param-hint", id=f"hint-{self.index}")

    def on_mount(self) -> None:
        self.check()

    @on(Input.Changed)
    def _changed(self) -> None:
        self.check()

    def check(self) -> bool:
        value = self.query_one(".param-value", Input)
        grid = self.query_one(".param-grid", Input)
        hint = self.query_one(".param-hint", Static)
        vcls, vhint = check_value(value.value, self.param, self.previous)
        gcls, ghint = check_grid(grid.value, self.param, self.previous)
        value.set_class(vcls == "-invalid", "-invalid")
        value.set_class(vcls == "-warning", "-warning")
        grid.set_class(gcls == "-invalid", "-invalid")
        grid.set_class(gcls == "-warning", "-warning")
        if grid.value.strip():
            cls, text = gcls, ghint
        else:
            cls, text = vcls, vhint
        hint.set_classes(f"param-hint {cls}".strip())
        hint.update(Text(text, no_wrap=True, overflow="ellipsis"))
        return vcls != "-invalid" and gcls != "-invalid"


class LaunchScreen(Screen[None]):
    """Pick an experiment, edit its parameters, Enter launches ``tuixp run`` in a child process."""

    BINDINGS = [
        Binding("ctrl+enter,ctrl+j", "launch", "Launch", show=True, priority=True),
        Binding("ctrl+r", "runs", "Runs", show=True),
        Binding("escape", "back", "Back", show=True),
    ]

    def __init__(self, experiment: str | None = None, trial_id: int | None = None) -> None:
        super().__init__()
        self.prefer = (experiment, trial_id) if experiment and trial_id else None
        self.choices: list[LaunchChoice] = []
        self.choice: LaunchChoice | None = None
        self.loaded = False

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with VerticalScroll(id="launch-form"):
            with Horizontal(classes="form-row"):
                yield Label("experiment", classes="form-label")
                yield Select[str](
                    [],
                    prompt="(type a script path below)",
                    id="launch-experiment",
                    allow_blank=True,
                )
            with Horizontal(classes="form-row"):
                yield Label("script", classes="form-label")
                yield Input(placeholder="path/to/experiment.py", id="launch-script")
            yield Static("", id="launch-from")
            yield Vertical(id="launch-params")
            with Horizontal(classes="form-row"):
                yield Label("more", classes="form-label")
                yield Input(
                    placeholder="NAME=VALUE … (parameters not listed above)", id="launch-extra"
                )
            with Horizontal(classes="form-row"):
                yield Label("seed", classes="form-label")
                yield Input(placeholder="none", id="launch-seed", type="integer")
                yield Label("scheduler", classes="form-label-2")
                yield Input(
                    "threads",
                    id="launch-scheduler",
                    placeholder="threads|processes|sync|tcp://HOST:PORT",
                )
        yield Static("", id="launch-message")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "tuixp · launch"
        self._say("Reading the experiments of the store…", "")
        self._load(self.tuixp.reader, self.prefer)

    @work(thread=True, exclusive=True, group="launch-form", exit_on_error=False)
    def _load(self, reader: StoreReader, prefer: tuple[str, int] | None) -> None:
        try:
            self.post_message(ChoicesLoaded(read_choices(reader, prefer), None))
        except TuixpError as exc:
            self.post_message(ChoicesLoaded([], str(exc)))

    @on(ChoicesLoaded)
    async def _choices(self, message: ChoicesLoaded) -> None:
        self.choices = message.choices
        select = self.query_one("#launch-experiment", Select)
        select.set_options([(c.experiment, c.experiment) for c in self.choices])
        self.loaded = True
        if message.error:
            self._say(f"{message.error} — type a script path to launch one.", "-error")
        if not self.choices:
            self.query_one("#launch-script", Input).focus()
            if not message.error:
                self._say(
                    "No earlier trial recorded a script: type one (and its parameters in 'more').",
                    "",
                )
            return
        wanted = self.prefer[0] if self.prefer else self.choices[0].experiment
        names = [c.experiment for c in self.choices]
        select.value = wanted if wanted in names else names[0]
        await self._show(self.choices[names.index(select.value)])

    @on(Select.Changed, "#launch-experiment")
    async def _experiment_changed(self, event: Select.Changed) -> None:
        for choice in self.choices:
            if choice.experiment == event.value and choice is not self.choice:
                await self._show(choice)

    async def _show(self, choice: LaunchChoice) -> None:
        self.choice = choice
        self.query_one("#launch-script", Input).value = choice.script
        if choice.scheduler in SCHEDULERS:
            self.query_one("#launch-scheduler", Input).value = choice.scheduler
        seed = self.query_one("#launch-seed", Input)
        seed.placeholder = (
            f"none (trial #{choice.trial_id} had {choice.seed})"
            if choice.seed is not None
            else "none"
        )
        self.query_one("#launch-from", Static).update(
            Text.assemble(
                ("parameters from trial ", "dim"),
                (f"#{choice.trial_id} ", "bold"),
                (f" of {choice.experiment}", "dim"),
                (f" · steps: {' → '.join(choice.steps)}" if choice.steps else "", "dim"),
            )
        )
        box = self.query_one("#launch-params", Vertical)
        await box.remove_children()
        await box.mount_all(
            [ParamRow(name, value, i) for i, (name, value) in enumerate(choice.params.items())]
        )
        rows = list(box.query(ParamRow))
        if rows:
            rows[0].query_one(".param-value", Input).focus()
        self._say(
            "Enter launches · values are Python literals or bare words · "
            "grid: comma-separated values",
            "",
        )

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_launch()

    @on(Input.Changed, "#launch-scheduler")
    def _scheduler_changed(self, event: Input.Changed) -> None:
        cls, hint = check_scheduler(event.value)
        event.input.set_class(cls == "-invalid", "-invalid")
        if hint:
            self._say(f"scheduler: {hint}", "-error")

    def build_request(self) -> LaunchRequest:
        """The request the form describes; ``ValueError`` says what to fix first."""
        script = self.query_one("#launch-script", Input).value.strip()
        if not script:
            raise ValueError("choose an experiment or type a script path")
        params: dict[str, str] = {}
        grid: dict[str, str] = {}
        for row in self.query(ParamRow):
            if not row.check():
                raise ValueError(
                    f"parameter {row.param}: {row.query_one('.param-hint', Static).content}"
                )
            value = row.query_one(".param-value", Input).value.strip()
            values = row.query_one(".param-grid", Input).value.strip()
            if values:
                grid[row.param] = values
            elif value:
                params[row.param] = value
        extra = self.query_one("#launch-extra", Input).value
        try:
            for item in shlex.split(extra):
                name, raw = parse_assignment(item)
                parse_value(raw, name)
                params[name] = raw
        except (UsageError, ValueError) as exc:
            raise ValueError(f"more: {str(exc).removeprefix('tuixp: ')}") from None
        seed_text = self.query_one("#launch-seed", Input).value.strip()
        seed = int(seed_text) if seed_text else None
        scheduler = self.query_one("#launch-scheduler", Input).value.strip() or "threads"
        if check_scheduler(scheduler)[0]:
            raise ValueError(f"scheduler: {check_scheduler(scheduler)[1]}")
        choice = self.choice if self.choice and self.choice.script == script else None
        return LaunchRequest(
            script=script,
            store=self.tuixp.reader.path,
            params=params,
            grid=grid,
            seed=seed,
            scheduler=scheduler,
            experiment=choice.experiment if choice else Path(script).stem,
            steps=list(choice.steps) if choice else [],
        )

    def action_launch(self) -> None:
        try:
            request = self.build_request()
        except ValueError as exc:
            self._say(f"Not launched: {exc}", "-error")
            return
        launch = start_launch(self.tuixp, request)
        self.app.switch_screen(ProgressScreen(launch.number))

    def action_runs(self) -> None:
        self.app.switch_screen(ProgressScreen())

    def action_back(self) -> None:
        self.dismiss()

    def _say(self, text: str, cls: str) -> None:
        msg = self.query_one("#launch-message", Static)
        msg.set_classes(cls)
        msg.update(Text(text, no_wrap=True, overflow="ellipsis"))
