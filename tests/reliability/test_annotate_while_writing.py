"""Annotations from other processes while a writer records (issue 17): nothing is lost, nothing
blocks. A writer records 40 trials (each a tenth of a second inside its step); meanwhile one
process tags each trial as soon as its id is handed out, through the store, another notes and
stars them through ``Experiment``, and the command line deletes and restores one. Every trial
ends intact and every annotation is there once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tuixp.store.store import Store

from .conftest import ROOT, assert_trial_intact, proc_env, start_writer, verify_store

TRIALS = 40

ANNOTATOR = r"""
import json, sys, time
from tuixp import curation
from tuixp.errors import TrialNotFound
from tuixp.store.store import get_store
import tuixp

store, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = get_store(store)
ex = tuixp.Experiment("rel", store=store)
done, k = [], 1
deadline = time.monotonic() + 120  # bounded: the writer takes about 10 s
while k <= n and time.monotonic() < deadline:
    last = st.counter.last("rel") if st.counter.path.exists() else 0
    if last < k:
        time.sleep(0.02)  # waits for the writer to hand out trial k
        continue
    try:
        if mode == "tag":
            curation.annotate(st, "rel", [k], "tag", [f"seen-{k}", "auto"])
        else:
            ex.note(k, f"note {k} from another process")
            ex.star(k)
    except TrialNotFound:
        time.sleep(0.02)  # its id is handed out, its start not journaled yet: again
        continue
    done.append(k)
    k += 1
print(json.dumps(done))
"""


def test_annotations_from_other_processes_while_a_writer_records(tmp_path) -> None:
    store = tmp_path / "s.duckdb"
    writer = start_writer(
        store, "--trials", str(TRIALS), "--start", "1", "--step-sleep", "0.1", "--pause-every", "8"
    )
    annotators = [
        subprocess.Popen(
            [sys.executable, "-c", ANNOTATOR, str(store), mode, str(TRIALS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=proc_env(),
            cwd=ROOT,
        )
        for mode in ("tag", "note")
    ]
    # From the command line too, once trial 6 has started (usually while the writer records;
    # the annotators above overlap it by construction: each trial is annotated as it starts).
    counter = Store(store).counter
    deadline = time.monotonic() + 60
    while not (counter.path.exists() and counter.last("rel") >= 6):
        assert time.monotonic() < deadline, "the writer never reached trial 6"
        assert writer.poll() is None, writer.communicate()[1][-3000:]
        time.sleep(0.05)  # waits for the writer's sixth trial id
    for args in (["rm", "rel", "3"], ["restore", "rel", "3"], ["rm", "rel", "5"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tuixp", "--store", str(store), *args],
            capture_output=True,
            text=True,
            env=proc_env(),
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    out, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, err[-3000:]
    done = {}
    for mode, p in zip(("tag", "note"), annotators):
        a_out, a_err = p.communicate(timeout=180)
        assert p.returncode == 0, a_err[-3000:]
        assert "lock" not in a_err.lower(), a_err[-3000:]
        done[mode] = json.loads(a_out.strip().splitlines()[-1])
    assert done == {"tag": list(range(1, TRIALS + 1)), "note": list(range(1, TRIALS + 1))}

    state = verify_store(store)
    assert sorted(state.trials) == [t for t in range(1, TRIALS + 1) if t != 5]  # 5 is deleted
    for tid in state.trials:
        assert_trial_intact(state, tid)
    with Store(store).connect() as con:
        rows = con.execute(
            "SELECT trial_id, tags, note, starred, deleted_at IS NOT NULL FROM trials_all "
            "WHERE experiment = 'rel' ORDER BY trial_id"
        ).fetchall()
        per_trial = con.execute(
            "SELECT trial_id, count(*), count(DISTINCT uuid) FROM annotations GROUP BY 1"
        ).fetchall()
        events = con.execute(
            "SELECT trial_id, trial_uuid, action, value FROM annotation_record ORDER BY 1"
        ).fetchall()
        uuids = dict(con.execute("SELECT trial_id, uuid FROM trial_record").fetchall())
    assert len(rows) == TRIALS
    for tid, tags, note, starred, deleted in rows:
        mine = [e for e in events if e[0] == tid]
        assert tags == sorted([f"seen-{tid}", "auto"]), (tid, uuids.get(tid), mine)
        assert note == f"note {tid} from another process" and starred, tid
        assert deleted == (tid == 5), tid
    expected = {tid: 4 + {3: 2, 5: 1}.get(tid, 0) for tid in range(1, TRIALS + 1)}
    assert {t: (n, u) for t, n, u in per_trial} == {t: (n, n) for t, n in expected.items()}
