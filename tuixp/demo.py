"""``tuixp demo``: record a small experiment so a new user has something to browse.

The demo script (``demo_experiment.py``) is copied beside the store, into ``<store>.demo/``,
and run the way ``tuixp run`` runs any script: a first trial, a grid, a trial that fails,
then the script's ``train`` step is edited (a learning-rate decay) and two more trials run,
so the store holds metrics over epochs, a persisted array per trial, a failure with its
traceback and a code change to diff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuixp.store.paths import StorePaths

SCRIPT = Path(__file__).with_name("demo_experiment.py")
# The one-line edit between the two code versions of the ``train`` step.
VERSION_1 = "        w -= lr * grad\n"
VERSION_2 = "        w -= lr / (1.0 + 0.05 * epoch) * grad  # version 2: a decaying step size\n"


def demo_folder(store: Path) -> Path:
    return StorePaths(store).demo


def run_demo(store: Path, say: Callable[[str], None] = print) -> str:
    """Record the demo's trials into ``store``; returns a summary for people."""
    from tuixp.scripts import load_script, use_store

    folder = demo_folder(store)
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "demo_experiment.py"
    source = SCRIPT.read_text()
    if VERSION_1 not in source:  # pragma: no cover - guards an edit of the shipped script
        raise RuntimeError("demo_experiment.py no longer has the line the demo edits")
    script.write_text(source)

    outcomes: list[Any] = []

    def load() -> Any:
        loaded = load_script(script)
        use_store(loaded, store)
        return loaded.pick(None)

    say(f"Recording the demo experiment into {store} (script: {script})")
    node = load()
    outcomes += node.compute_grid(seed=7)
    say("  1 trial with the default parameters")
    outcomes += node.compute_grid(seed=7, lr=[0.01, 0.1, 0.5], model=["linear", "quadratic"])
    say("  6 trials: a grid of lr x model")
    outcomes += node.compute_grid(seed=7, model=["cubic"])
    say("  1 trial that fails (an unknown model)")
    script.write_text(source.replace(VERSION_1, VERSION_2))
    node = load()
    outcomes += node.compute_grid(seed=7, lr=[0.05, 0.3], epochs=[40])
    say("  2 trials after editing the train step (a decaying step size)")
    ex = node.ex
    failed = sum(o.status != "succeeded" for o in outcomes)
    first, last = outcomes[0].trial_id, outcomes[-1].trial_id
    return "\n".join(
        [
            f"Recorded {len(outcomes)} trials of experiment {ex.id} (trials {first} to {last}, "
            f"{failed} failed) in {store}.",
            "Look at them with:",
            f"  tuixp --store {store}                 (the TUI)",
            f"  tuixp ls {ex.id} --store {store}",
            f"  tuixp diff {ex.id} {first} {last} --store {store}",
            f"  tuixp sql \"SELECT trial_id, params->>'lr' AS lr, result FROM trials\" --store {store}",
        ]
    )
