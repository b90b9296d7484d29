"""Keyboard scrolling of the active tab, shared by the screens made of tabbed panes."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import TabbedContent


class ScrollsActivePane:
    """Screen mixin: the scroll actions move the active pane's ``#<prefix><pane>-scroll``.

    Panes without such a scroller (a plot, a table that scrolls itself) ignore the keys.
    """

    SCROLL_PREFIX = ""

    def _scroller(self) -> VerticalScroll | None:
        pane = self.query_one(TabbedContent).active  # type: ignore[attr-defined]
        try:
            return self.query_one(  # type: ignore[attr-defined, no-any-return]
                f"#{self.SCROLL_PREFIX}{pane}-scroll", VerticalScroll
            )
        except Exception:  # noqa: BLE001 - this pane has no scroller of its own
            return None

    def action_scroll_up(self) -> None:
        if (s := self._scroller()) is not None:
            s.scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        if (s := self._scroller()) is not None:
            s.scroll_down(animate=False)

    def action_scroll_home(self) -> None:
        if (s := self._scroller()) is not None:
            s.scroll_home(animate=False)

    def action_scroll_end(self) -> None:
        if (s := self._scroller()) is not None:
            s.scroll_end(animate=False)
