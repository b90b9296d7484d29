"""Artifacts (issue 20, item 5): ``ex.log_artifact`` from a step keeps a file or folder
content-addressed beside the store, recorded per trial with size and hash; ``ex.get_artifact``
gives a local path to its bytes; ``tuixp artifact`` lists and copies; ``tuixp gc`` and
``remove_trial_artifacts`` (purge) know them. Real files, real trials, real subprocesses."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tuixp
from tuixp.errors import StoreError, TrialIDNotFoundError, TuixpError
from tuixp.store import artifacts
from tuixp.store.artifacts import ArtifactError, ArtifactStore, preview_text
from tuixp.store.paths import StorePaths
from tuixp.store.store import Store

from .conftest import env_with_path

TUIXP = str(Path(sys.executable).with_name("tuixp"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(store: Path) -> list[tuple]:
    with Store(store).connect() as con:
        return con.execute(
            "SELECT trial_id, name, kind, hash, size, files, step FROM artifacts "
            "ORDER BY trial_id, name"
        ).fetchall()


def logging_experiment(store: Path, work: Path):  # type: ignore[no-untyped-def]
    ex = tuixp.Experiment("arts", store=store)
    n = ex.parameter("n")

    @ex.result
    def train(n):
        ckpt = work / f"ckpt-{n}"
        (ckpt / "sub").mkdir(parents=True, exist_ok=True)
        (ckpt / "weights.bin").write_bytes(bytes(range(256)) * 4)
        (ckpt / "sub" / "config.json").write_text(json.dumps({"n": n}))
        ex.log_artifact(ckpt, name="checkpoint")
        preds = work / f"preds-{n}.csv"
        preds.write_text("id,pred\n1,0.5\n")  # the same bytes in every trial
        ex.log_artifact(preds, name="preds.csv")
        return n

    return ex, train(n)


def test_a_file_and_a_folder_are_kept_by_hash_and_come_back(
    store_path: Path, tmp_path: Path
) -> None:
    ex, node = logging_experiment(store_path, tmp_path)
    node.compute(n=1)
    node.compute(n=2)
    recorded = rows(store_path)
    csv_bytes = b"id,pred\n1,0.5\n"
    assert [(t, n, k, s, f, st) for t, n, k, _, s, f, st in recorded] == [
        (1, "checkpoint", "dir", 1024 + 8, 2, "train"),
        (1, "preds.csv", "file", len(csv_bytes), 1, "train"),
        (2, "checkpoint", "dir", 1024 + 8, 2, "train"),
        (2, "preds.csv", "file", len(csv_bytes), 1, "train"),
    ]
    file_hashes = {h for _, n, _, h, *_ in recorded if n == "preds.csv"}
    assert file_hashes == {sha(csv_bytes)}  # one hash: the bytes', stored once
    path = ex.get_artifact("preds.csv", 2)
    assert path.read_bytes() == csv_bytes
    folder = ex.get_artifact("checkpoint", 1)
    assert (folder / "weights.bin").read_bytes() == bytes(range(256)) * 4
    assert (folder / "sub" / "config.json").read_text() == '{"n": 1}'
    assert (ex.get_artifact("checkpoint") / "sub" / "config.json").read_text() == '{"n": 2}'
    blobs = [p for p in (StorePaths(store_path).artifacts / "blobs").rglob("*") if p.is_file()]
    # weights (shared), two configs, two manifests, one CSV
    assert len(blobs) == 6


def test_logging_a_name_again_keeps_the_last(store_path: Path, tmp_path: Path) -> None:
    ex = tuixp.Experiment("again", store=store_path)
    f = tmp_path / "model.pt"

    @ex.result
    def train():
        for epoch in range(3):
            f.write_text(f"epoch {epoch}")
            ex.log_artifact(f)
        return 1

    train().compute()
    assert [(n, s) for _, n, _, _, s, _, _ in rows(store_path)] == [("model.pt", 7)]
    assert ex.get_artifact("model.pt").read_text() == "epoch 2"


def test_a_step_on_the_process_scheduler_logs_artifacts(store_path: Path, tmp_path: Path) -> None:
    ex, node = logging_experiment(store_path, tmp_path)
    node.compute(n=3, scheduler="processes")
    assert {n for _, n, *_ in rows(store_path)} == {"checkpoint", "preds.csv"}
    assert (ex.get_artifact("checkpoint") / "sub" / "config.json").read_text() == '{"n": 3}'


def test_bad_input_is_refused_with_one_line(store_path: Path, tmp_path: Path) -> None:
    ex = tuixp.Experiment("bad", store=store_path)
    what = ex.parameter("what")

    @ex.result
    def step(what):
        if what == "missing":
            ex.log_artifact(tmp_path / "nope.bin")
        else:
            (tmp_path / "x").write_text("x")
            ex.log_artifact(tmp_path / "x", name=what)
        return 1

    with pytest.raises(ArtifactError, match=r"Cannot log artifact 'nope.bin': .* does not exist"):
        step(what).compute(what="missing")
    for name in ("a/b", "..", "", "bell\x07"):
        with pytest.raises(ArtifactError, match="artifact name"):
            step(what).compute(what=name)
    with pytest.raises(TrialIDNotFoundError):
        ex.log_artifact(tmp_path / "x")  # outside a step
    assert rows(store_path) == []
    with pytest.raises(ArtifactError, match=r"Unable to find artifact 'x' in trial 1 of bad"):
        ex.get_artifact("x", 1)
    assert isinstance(ArtifactError("x"), TuixpError)


def test_a_damaged_artifact_is_not_handed_out(store_path: Path, tmp_path: Path) -> None:
    ex, node = logging_experiment(store_path, tmp_path)
    node.compute(n=1)
    blob = ex.get_artifact("preds.csv")
    blob.chmod(0o644)
    blob.write_text("tampered")
    with pytest.raises(StoreError, match="damaged"):
        ex.get_artifact("preds.csv")


def test_gc_and_purge_delete_only_what_no_trial_needs(store_path: Path, tmp_path: Path) -> None:
    ex, node = logging_experiment(store_path, tmp_path)
    node.compute(n=1)
    node.compute(n=2)
    store = ArtifactStore(StorePaths(store_path).artifacts)
    stray = tmp_path / "stray.txt"
    stray.write_text("never recorded")
    orphan = store.put(stray)  # bytes no trial refers to
    proc = subprocess.run(
        [TUIXP, "--store", str(store_path), "gc", "--min-age", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_with_path(),
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "freed 1 file(s), 14 bytes" in proc.stdout and "3 artifact(s) kept" in proc.stdout
    )  # 4 logged, 3 distinct
    assert not store.blob(orphan.hash).exists()
    assert ex.get_artifact("preds.csv", 1).read_bytes() == b"id,pred\n1,0.5\n"

    # tuixp rm --purge's part: trial 1's artifacts go, what trial 2 shares stays.
    with Store(store_path).connect() as con:
        shared = {a.hash for a in artifacts.listed(con, "arts", 1)} & {
            a.hash for a in artifacts.listed(con, "arts", 2)
        }
        ckpt1 = artifacts.find(con, "arts", 1, "checkpoint")
        manifest_size = store.blob(ckpt1.hash).stat().st_size
        files, freed = artifacts.remove_trial_artifacts(con, store_path, "arts", 1)
        assert artifacts.listed(con, "arts", 1) == []
    assert shared == {sha(b"id,pred\n1,0.5\n")}
    # trial 1's config and its folder's manifest; the weights and the CSV are shared
    assert (files, freed) == (2, len('{"n": 1}') + manifest_size)
    assert not store.blob(ckpt1.hash).exists()
    assert not (store.root / "dirs" / ckpt1.hash).exists()
    assert (ex.get_artifact("checkpoint", 2) / "weights.bin").stat().st_size == 1024
    assert ex.get_artifact("preds.csv", 2).exists()


def test_the_preview_is_bounded_and_shows_no_control_characters(tmp_path: Path) -> None:
    text = tmp_path / "log.txt"
    text.write_text("ok line\n\x1b[2J\x1b]0;title\x07cleared?\r\nbidi \u202e evil\n" + "x\n" * 500)
    shown = preview_text(text, "log.txt")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\ufffd[2J" in shown and "ok line" in shown
    assert shown.count("\n") < 50 and "first 40 lines" in shown
    csv = tmp_path / "p.csv"
    csv.write_text("id,prediction\n1,0.5\n22,\x1b[31mred\n")
    assert preview_text(csv, "p.csv").splitlines()[2:] == [
        "id  prediction",
        "1   0.5",
        "22  \ufffd[31mred",
    ]
    binary = tmp_path / "w.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    assert preview_text(binary, "w.bin") == "w.bin: binary, 300 bytes (not shown)"
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 1_000_000)
    assert len(preview_text(big, "big.txt", limit=4096)) < 4096


def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            import tuixp

            ex = tuixp.Experiment("cli_arts")

            @ex.result
            def train():
                Path("model.pt").write_bytes(b"weights" * 10)
                ex.log_artifact("model.pt")
                Path("plots").mkdir(exist_ok=True)
                Path("plots/loss.txt").write_text("0.5\\n0.25\\n")
                ex.log_artifact("plots")
                return 1
            train()
            """
        )
    )
    return path


def tuixp_cmd(store: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TUIXP, "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_with_path(),
        cwd=cwd,
    )


@pytest.mark.slow
def test_tuixp_artifact_lists_prints_and_copies(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    run = tuixp_cmd(store, "run", str(script(tmp_path)), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    listed = tuixp_cmd(store, "artifact", "cli_arts", "1", "-f", "csv", cwd=tmp_path)
    # A folder's hash is its manifest's: [[path, hash, size], ...] as compact JSON.
    entry = ["loss.txt", sha(b"0.5\n0.25\n"), 9]
    manifest = json.dumps({"files": [entry]}, separators=(",", ":")).encode()
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "name,kind,size,files,hash",
        f"model.pt,file,70,1,{sha(b'weights' * 10)}",
        f"plots,dir,9,1,{sha(manifest)}",
    ]
    where = tuixp_cmd(store, "artifact", "cli_arts", "latest", "model.pt", cwd=tmp_path)
    assert Path(where.stdout.strip()).read_bytes() == b"weights" * 10
    out = tmp_path / "out"
    out.mkdir()
    copied = tuixp_cmd(store, "artifact", "cli_arts", "1", "plots", "-o", str(out), cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (out / "plots" / "loss.txt").read_text() == "0.5\n0.25\n"
    target = out / "mine.pt"
    target.write_text("keep me")
    for args, message in [
        (("1", "model.pt", "-o", str(target)), f"{target} exists: not overwritten"),
        (("1", "nope"), "Unable to find artifact 'nope' in trial 1 of cli_arts"),
        (("1", "-o", str(out)), "-o needs the NAME of the artifact to copy"),
        (("9", "model.pt"), "Unable to find trial id: 9"),
        (("1", "model.pt", "-o", str(tmp_path / "no" / "dir" / "x")), "is not a folder"),
    ]:
        bad = tuixp_cmd(store, "artifact", "cli_arts", *args, cwd=tmp_path)
        assert bad.returncode == 2, (args, bad.stderr)
        assert len(bad.stderr.splitlines()) == 1 and message in bad.stderr, bad.stderr
    assert target.read_text() == "keep me"  # nothing written on refusal
    assert not (tmp_path / "no").exists()
