"""``tuixp serve``: the TUI in a browser, through textual-serve (the ``serve`` extra).

- ``guard``: who may use the server (loopback names, the token, the page's origin); no web
  framework in it, so it is checked on its own.
- ``server``: textual-serve's ``Server`` with that guard in front of every request, URLs taken
  from the request (so an SSH-forwarded port works), and a bounded, clean stop on Ctrl-C.
- ``session``: what each browser tab runs (``python -m tuixp.serve.session --store PATH``):
  the TUI itself, unchanged, on Textual's web driver.

Nothing here is imported by the TUI or the core; the CLI imports it only for ``tuixp serve``.
"""
