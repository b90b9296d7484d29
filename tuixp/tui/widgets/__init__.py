"""Widgets of the tuixp TUI."""
