"""Screens of the tuixp TUI: browse (experiments and trials), trial detail, help."""
