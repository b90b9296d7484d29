"""``tuixp rm --purge``: trials removed for good, the disk their files took freed, every other
trial exactly as it was (issue 17)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tuixp
from tests.conftest import ROOT, env_with_path
from tests.test_cli_units import invoke, one_error_line, store_snapshot
from tuixp.store.paths import StorePaths
from tuixp.store.store import Store

VIEWS = ("trials", "params", "metrics", "steps", "environments", "packages", "code", "persisted")


def _record(store: Path, n: int = 5) -> tuixp.Experiment:
    ex = tuixp.Experiment("pur", store=store)
    a = ex.parameter("a")

    @ex.persist
    def table(a):
        return {"rows": [a] * 2000, "label": f"trial output {a}"}  # a few KB, one per trial

    @ex.result
    def score(t):
        ex.save_metric("loss", epoch=1, value=t["rows"][0] / 10)
        ex.save_metric("loss", epoch=2, value=t["rows"][0] / 20)
        if t["rows"][0] == 4:
            raise ValueError("four fails")  # a failed trial: its traceback is a stored text
        return t["rows"][0]

    node = score(table(a))
    for i in range(1, n + 1):
        ex.set_parameters(a=i)
        try:
            node.compute(scheduler="sync")
        except ValueError:
            pass
    with Store(store).connect():
        pass
    return ex


def _rows(store: Path, keep: list[int]) -> dict[str, list[str]]:
    """Every public view's rows of the trials ``keep``, comparable with ==."""
    out = {}
    with Store(store).connect() as con:
        for view in VIEWS:
            rows = con.execute(
                f"SELECT * FROM {view} WHERE experiment = 'pur' AND list_contains(?, trial_id)",
                [keep],
            ).fetchall()
            out[view] = sorted(repr(r) for r in rows)
    return out


def _object_files(store: Path) -> dict[str, int]:
    root = StorePaths(store).objects
    return {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_purge_frees_disk_and_keeps_every_other_trial_intact(store_path: Path) -> None:
    ex = _record(store_path)
    ex.tag(2, "junk")
    ex.note(4, "failed on purpose")
    kept = [1, 3, 5]
    before_rows = _rows(store_path, kept)
    before_files = _object_files(store_path)
    with Store(store_path).connect() as con:
        doomed = dict(
            con.execute(
                "SELECT trial_id, object_hash FROM persisted WHERE experiment = 'pur' "
                "AND trial_id IN (2, 4)"
            ).fetchall()
        )
        tb = con.execute("SELECT traceback_hash FROM trial_record WHERE trial_id = 4").fetchone()[0]
    assert set(doomed) == {2} and tb  # a failed trial persists nothing
    freed_expected = sum(
        size for name, size in before_files.items() if name.split(".")[0] in doomed.values()
    )

    assert invoke("rm", "pur", "2", "--store", store_path).exit_code == 0
    r = invoke("rm", "pur", "4", "--purge", "--yes", "--store", store_path)
    assert r.exit_code == 0, r.stderr
    assert "purged 1 trial(s) of pur" in r.stdout
    r = invoke("rm", "pur", "--purge", "--yes", "--store", store_path)  # every deleted one: 2
    assert r.exit_code == 0, r.stderr
    assert "purged 1 trial(s) of pur" in r.stdout and "freed 1 file(s)" in r.stdout

    after_files = _object_files(store_path)
    assert set(before_files) - set(after_files) == {
        n for n in before_files if n.split(".")[0] in doomed.values()
    }
    assert sum(before_files.values()) - sum(after_files.values()) == freed_expected > 0
    assert _rows(store_path, kept) == before_rows  # byte for byte, in every view
    with Store(store_path).connect() as con:
        for table in (
            "trial_record",
            "param_record",
            "metric_record",
            "step_record",
            "persisted_record",
            "annotation_record",
        ):
            key = "uuid" if table == "trial_record" else "trial_uuid"
            left = con.execute(
                f"SELECT count(*) FROM {table} WHERE {key} NOT IN (SELECT uuid FROM trial_record)"
            ).fetchone()[0]
            assert left == 0, table
        assert con.execute("SELECT count(*) FROM blob WHERE hash = ?", [tb]).fetchone()[0] == 0
        ids = [r[0] for r in con.execute("SELECT trial_id FROM trials_all ORDER BY 1").fetchall()]
    assert ids == kept
    # The kept trials' outputs still load; ids are never handed out again.
    for t in kept:
        assert ex.get_persisted("table", t)["label"] == f"trial output {t}"
    assert ex.trial_id == 5


def test_purge_asks_first_and_a_no_purges_nothing(store_path: Path) -> None:
    _record(store_path, 2)
    before = store_snapshot(store_path)
    script = (
        "import sys, pty, os\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        "    os.execv(sys.executable, [sys.executable, '-m', 'tuixp', '--store', sys.argv[1],"
        " 'rm', 'pur', '1', '--purge'])\n"
        "out = b''\n"
        "while b'Purge them?' not in out:\n"
        "    out += os.read(fd, 1024)\n"
        "os.write(fd, b'n\\n')\n"
        "try:\n"
        "    while True:\n"
        "        chunk = os.read(fd, 1024)\n"
        "        if not chunk: break\n"
        "        out += chunk\n"
        "except OSError:\n"
        "    pass\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status)); print(out.decode())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(store_path)],
        capture_output=True,
        text=True,
        env=env_with_path(),
        cwd=ROOT,
        timeout=60,
    )
    code, _, text = proc.stdout.partition("\n")
    assert code == "1", proc.stdout + proc.stderr
    assert "this removes 1 trial(s) of pur (1)" in text and "nothing purged" in text
    assert store_snapshot(store_path) == before


def test_purge_refuses_a_running_trial(store_path: Path, tmp_path: Path) -> None:
    """A trial running in another process is not purged: its writer would add to it."""
    signal = tmp_path / "inside"
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time, pathlib, tuixp\n"
        f"ex = tuixp.Experiment('pur', store={str(store_path)!r})\n"
        "@ex.result\n"
        "def slow():\n"
        f"    pathlib.Path({str(signal)!r}).write_text('x')\n"
        "    time.sleep(30)\n"
        "    return 1\n"
        "slow().compute(scheduler='sync')\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], env=env_with_path(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not signal.exists():  # waits for the trial to be inside its step
            assert time.monotonic() < deadline, "the writer never started its trial"
            assert proc.poll() is None, "the writer ended early"
            time.sleep(0.05)
        r = invoke("rm", "pur", "1", "--purge", "--yes", "--store", store_path)
        assert r.exit_code == 2
        assert "trial 1 of pur is running" in one_error_line(r)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_purge_drops_the_step_cache_entries_of_purged_trials(store_path: Path) -> None:
    ex = tuixp.Experiment("cached", store=store_path)
    a = ex.parameter("a")
    calls: list[int] = []

    @ex.cached
    def heavy(a):
        calls.append(a)
        return [a] * 1000

    @ex.result
    def score(h):
        return len(h)

    node = score(heavy(a))
    ex.set_parameters(a=1)
    node.compute(scheduler="sync")
    node.compute(scheduler="sync")  # reused from trial 1
    assert calls == [1]
    with Store(store_path).connect():
        pass
    files = _object_files(store_path)
    assert len(files) == 1
    # Trial 2 reused trial 1's output: purging only trial 1 keeps the file (trial 2 refers to it).
    r = invoke("rm", "cached", "1", "--purge", "--yes", "--store", store_path)
    assert r.exit_code == 0, r.stderr
    assert "freed 0 file(s)" in r.stdout
    r = invoke("rm", "cached", "2", "--purge", "--yes", "--store", store_path)
    assert r.exit_code == 0, r.stderr
    assert _object_files(store_path) == {}
    node.compute(scheduler="sync")  # the cache entry went with trial 1: computed again
    assert calls == [1, 1]


def test_purge_keeps_shared_texts_while_another_writer_lives(
    store_path: Path, tmp_path: Path
) -> None:
    ex = _record(store_path, 2)
    signal = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from tuixp.store.store import Store\n"
            "st = Store(sys.argv[1])\n"
            "st.record([], sync=True)\n"  # opens (and locks) a journal, as a writer does
            "pathlib.Path(sys.argv[2]).write_text('x')\n"
            "time.sleep(60)\n",
            str(store_path),
            str(signal),
        ],
        env=env_with_path(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not signal.exists():  # waits for the other writer's journal to be locked
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        with Store(store_path).connect() as con:
            texts = con.execute("SELECT count(*) FROM blob").fetchone()[0]
        r = invoke("rm", "pur", "1", "--purge", "--yes", "--store", store_path)
        assert r.exit_code == 0, r.stderr
        assert "kept the texts trials share" in r.stdout
        with Store(store_path).connect() as con:
            assert con.execute("SELECT count(*) FROM blob").fetchone()[0] == texts
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert ex.get_environment(2)  # the remaining trial's environment is whole


def test_purge_of_the_whole_experiment_removes_its_texts(store_path: Path) -> None:
    _record(store_path, 3)
    with Store(store_path).connect() as con:
        before = con.execute("SELECT count(*) FROM blob").fetchone()[0]
    r = invoke("rm", "pur", "1-3", "--purge", "--yes", "--store", store_path)
    assert r.exit_code == 0, r.stderr
    with Store(store_path).connect() as con:
        counts: dict[str, Any] = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("trial_record", "blob", "code_set", "package_set", "metric_record")
        }
    assert counts == dict.fromkeys(counts, 0), (before, counts)
    assert _object_files(store_path) == {}
    shown = json.loads(invoke("ls", "--store", store_path, "-f", "json").stdout)
    assert shown == []
