"""The help screen (``?``): every key of every screen, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# tuixp keys

## Everywhere
| key | action |
|---|---|
| `?` | this help |
| `ctrl+p` | command palette: sort, filter, open, marks, themes… |
| `:` | SQL screen: read-only queries over the store's views |
| `q` | quit (the terminal is restored) |
| `tab` / `shift+tab` | next / previous pane |

## Experiments and trials
| key | action |
|---|---|
| `j` `k` or arrows | move down / up |
| `g` `G` or `home` `end` | first / last trial |
| `ctrl+f` `ctrl+b` or page keys | page down / up |
| `h` `l` or left right | choose a column |
| `s` | sort by that column (again: reverse) |
| `/` | filter: a SQL condition such as `status = 'failed'` or `lr > 0.01 AND loss < 0.3` |
| `x` | clear the filter |
| `space` | mark the trial for comparison (again: unmark) |
| `c` | clear the marks |
| `enter` | open the trial |
| `e` / `t` | go to the experiments / the trials |
| `r` | read the store now (it refreshes by itself every second) |

Columns a filter can use: `trial_id status result elapsed started finished seed commit branch
dirty error host code_changed env_changed impure`, each parameter and each metric (its last
value) by name. The `CEI` column flags a trial whose **C**ode or **E**nvironment changed since
the previous trial, or with an **I**mpure step.

## Trial detail
| key | action |
|---|---|
| `1`…`7` | overview, metrics, code, environment, git, outputs, steps |
| `m` | metrics plot: next metric (marked trials are overlaid) |
| `p` | preview the selected persisted output |
| `P` | load a pickled output (only after `p` asked) |
| `j` `k` `g` `G` | scroll |
| `escape` | back to the trials |
"""


class HelpScreen(ModalScreen[None]):
    """Keys of every screen; escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", show=True),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss()

    def action_scroll_down(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_up(animate=False)
