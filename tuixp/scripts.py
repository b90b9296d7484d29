"""Loading an experiment script as ``tuixp run`` does: import it as a fresh module, find its
experiments and result nodes, and point them at the store the command line chose.

Used by the command line (``tuixp run``), ``tuixp repeat`` and ``tuixp demo``. A script that
cannot load is a ``UsageError`` naming the file and line in the user's own code; its traceback
(from the script's first line on) is the error's ``detail``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuixp.errors import UsageError, first_line


@dataclass
class LoadedScript:
    path: Path
    module: Any
    experiments: list[Any]
    results: dict[str, Any] = field(default_factory=dict)  # variable name -> result Node

    def pick(self, name: str | None) -> Any:
        """The result node to run: the only one, or the one ``--result NAME`` names."""
        if name is not None:
            found = self.results.get(name)
            if found is None:
                by_step = [n for n in self.results.values() if n.step.name == name]
                if len(by_step) == 1:
                    found = by_step[0]
            if found is None:
                known = ", ".join(self.results) or "none"
                raise UsageError(f"{self.path.name} has no result node {name!r} (it has: {known})")
            return found
        if not self.results:
            names = ", ".join(e.id for e in self.experiments)
            raise UsageError(
                f"{self.path.name} defines experiment {names} but no result node at module "
                "level: call the result step there (score(...), assigned or not); tuixp run "
                'does not run the script\'s if __name__ == "__main__": block'
            )
        if len(self.results) > 1:
            raise UsageError(
                f"{self.path.name} has several result nodes "
                f"({', '.join(self.results)}): pick one with --result NAME"
            )
        return next(iter(self.results.values()))


_script_counter = iter(range(1, 1 << 30))


def load_script(path: Path, store: Path | None = None) -> LoadedScript:
    """Import ``path`` as a fresh module (not ``__main__``) and find its experiments and results.

    Its ``if __name__ == "__main__":`` block does not run; its folder is on ``sys.path`` while
    it loads, so it can import its neighbours. With ``store``, its experiments use that store
    from the start (what it reads while loading, too), whatever its ``store=`` said.
    """
    from tuixp.experiment import EXPERIMENTS, fresh_instances
    from tuixp.graph import Node, collect_results

    path = path.expanduser()
    if not path.exists():
        raise UsageError(f"script not found: {path}")
    if not path.is_file():
        raise UsageError(f"not a script file: {path}")
    path = path.resolve()
    stem = re.sub(r"\W", "_", path.stem)
    name = f"tuixp_script_{stem}_{next(_script_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path.name} as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    before = len(EXPERIMENTS)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        # A script loaded again is a fresh start, as in a new process; every result node it
        # builds is seen, assigned to a variable or not.
        with fresh_instances(store), collect_results() as built:
            spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise UsageError(
            f"{path.name} exited while being loaded (exit code {exc.code}); "
            "tuixp run imports the script, so keep argument parsing under "
            'if __name__ == "__main__":'
        ) from None
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        where = path.name
        if exc.filename and Path(exc.filename).resolve() != path:  # in a module it imports
            bad = Path(exc.filename).resolve()
            where = f"{path.name} failed while being loaded: " + (
                str(bad.relative_to(path.parent)) if bad.is_relative_to(path.parent) else str(bad)
            )
        raise UsageError(
            f"{where}, line {exc.lineno}: SyntaxError: {exc.msg}",
            detail=_user_traceback(exc, path),
        ) from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UsageError(
            f"{path.name} failed while being loaded: {_where(exc, path)}"
            f"{type(exc).__name__}: {first_line(str(exc))}",
            detail=_user_traceback(exc, path),
        ) from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    experiments: list[Any] = []
    for ex in EXPERIMENTS[before:]:
        if all(ex is not e for e in experiments):
            experiments.append(ex)
    results: dict[str, Any] = {}
    for var, value in vars(module).items():
        if isinstance(value, Node) and value.step.kind == "result":
            if all(value is not n for n in results.values()):
                results[var] = value
                if all(value.ex is not e for e in experiments):
                    experiments.append(value.ex)
    if not results:
        # daskperiment's scripts end with a bare ``calculate_score(d)``: the result node the
        # script built without assigning it.
        for node in built:
            name = f"{node.step.name}(...)"
            if name in results:
                name = f"{node.step.name}(...)#{len(results) + 1}"
            results[name] = node
            if all(node.ex is not e for e in experiments):
                experiments.append(node.ex)
    if not experiments:
        raise UsageError(
            f"{path.name} defines no tuixp Experiment "
            '(ex = tuixp.Experiment("name") at module level)'
        )
    for ex in experiments:
        ex.script = str(path)  # the trials' script: this file, not the tuixp executable
    return LoadedScript(path, module, experiments, results)


def use_store(loaded: LoadedScript, path: Path) -> None:
    """Record the script's trials in ``path``, whatever its ``store=`` said (docs/cli.md)."""
    for ex in loaded.experiments:
        ex.use_store(path)


def _user_frames(exc: BaseException, path: Path) -> list[Any]:
    """The frames of ``exc``'s traceback in the user's own files: the script and the modules
    beside it (its folder and below), not installed packages (a venv inside the project
    included) nor tuixp itself."""
    import traceback

    folder, own = path.parent, Path(__file__).resolve().parent

    def users(filename: str) -> bool:
        try:
            file = Path(filename).resolve()
        except (OSError, ValueError):
            return False
        return (
            file.is_relative_to(folder)
            and not file.is_relative_to(own)
            and not {"site-packages", "dist-packages"} & set(file.parts)
        )

    return [f for f in traceback.extract_tb(exc.__traceback__) if users(f.filename)]


def _where(exc: BaseException, path: Path) -> str:
    """Where in the user's files it went wrong: the innermost frame there (the script's own
    line when that is all there is), as ``helpers.py, line 2: `` or ``line 7: ``."""
    frames = _user_frames(exc, path)
    if not frames:
        return ""
    last = frames[-1]
    file = Path(last.filename).resolve()
    if file == path:
        return f"line {last.lineno}: "
    return f"{file.relative_to(path.parent)}, line {last.lineno}: "


def _user_traceback(exc: BaseException, path: Path) -> str:
    """The traceback from the script's first line on (tuixp's import machinery left out)."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
