"""Torch-aware persistence (issue 20, item 6): an ``@ex.persist`` step returning a torch module
or a dict of tensors is kept in torch's own format and loads back; the same seed trains the
same weights, stored once under one hash. Real training loops on the CPU."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tuixp
from tuixp.store.objects import RUNS_CODE, deserialize, serialize
from tuixp.store.store import Store

from .conftest import env_with_path

torch = pytest.importorskip("torch")

TUIXP = str(Path(sys.executable).with_name("tuixp"))


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.fc2 = torch.nn.Linear(8, 1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.fc2(torch.relu(self.fc1(x)))


def training(store: Path, returns: str):  # type: ignore[no-untyped-def]
    ex = tuixp.Experiment(f"train_{returns}", store=store)
    lr = ex.parameter("lr")

    @ex
    def data():
        x = torch.randn(64, 4)
        return x, x.sum(dim=1, keepdim=True)

    @ex.persist
    def train(xy, lr):
        x, y = xy
        net = Net()
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        for epoch in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x), y)
            loss.backward()
            opt.step()
            ex.save_metric("loss", epoch=epoch, value=loss.item())
        return net if returns == "module" else net.state_dict()

    @ex.result
    def final(model):
        return float(sum(p.abs().sum() for p in model.values())) if isinstance(model, dict) else 0.0

    return ex, final(train(data(), lr))


def formats(store: Path) -> list[tuple[int, str, str]]:
    with Store(store).connect() as con:
        return con.execute(
            "SELECT trial_id, format, object_hash FROM persisted ORDER BY trial_id"
        ).fetchall()


def test_a_state_dict_is_stored_as_torch_and_the_same_seed_gives_the_same_weights(
    store_path: Path,
) -> None:
    ex, node = training(store_path, "state_dict")
    node.compute(lr=0.05, seed=3)
    node.compute(lr=0.05, seed=3)
    node.compute(lr=0.05, seed=4)
    rows = formats(store_path)
    assert [f for _, f, _ in rows] == ["torch", "torch", "torch"]
    assert rows[0][2] == rows[1][2], "the same seed trained other weights"
    assert rows[0][2] != rows[2][2], "another seed trained the same weights"
    one, two, other = (ex.get_persisted("train", t) for t in (1, 2, 3))
    assert set(one) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not torch.equal(one["fc1.weight"], other["fc1.weight"])
    # Stored once: two trials, one file.
    objects = store_path.with_name(store_path.name + ".objects")
    assert len(list(objects.rglob("*.torch"))) == 2
    losses = ex.load_metric("loss", [1, 2])
    assert losses[1].tolist() == losses[2].tolist()
    assert losses[1].iloc[-1] < losses[1].iloc[0], "the loop did not train"


def test_a_whole_module_is_stored_as_torch_module_and_predicts_the_same(
    store_path: Path,
) -> None:
    ex, node = training(store_path, "module")
    node.compute(lr=0.05, seed=1)
    node.compute(lr=0.05, seed=1)
    rows = formats(store_path)
    assert [f for _, f, _ in rows] == ["torch-module", "torch-module"]
    assert "torch-module" in RUNS_CODE  # the TUI asks before loading it
    assert rows[0][2] == rows[1][2]
    net = ex.get_persisted("train", 1)
    assert isinstance(net, Net)
    x = torch.ones(2, 4)
    assert torch.equal(net(x), ex.get_persisted("train", 2)(x))


def test_a_tensor_dict_loads_without_unpickling_code() -> None:
    """The 'torch' format is loaded with weights_only=True: a file holding anything but
    tensors and plain containers is refused, not run."""
    data, fmt = serialize({"w": torch.arange(6.0).reshape(2, 3)})
    assert fmt == "torch"
    assert torch.equal(deserialize(data, fmt)["w"], torch.arange(6.0).reshape(2, 3))
    evil, _ = serialize(Net())  # a pickled class
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        deserialize(evil, "torch")
    # A plain tensor too; a dict mixing tensors and other values stays a pickle.
    assert serialize(torch.zeros(3))[1] == "torch"
    assert serialize({"w": torch.zeros(1), "note": "x"})[1] == "pickle"


@pytest.mark.slow
def test_tuixp_run_of_a_torch_script_twice_stores_the_same_weights(tmp_path: Path) -> None:
    """A real `tuixp run` subprocess each time: the weights' hash is the same across processes."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            import tuixp

            ex = tuixp.Experiment("cpu_train")
            lr = ex.parameter("lr", default=0.1)

            @ex.persist
            def train(lr):
                net = torch.nn.Linear(3, 1)
                opt = torch.optim.SGD(net.parameters(), lr=lr)
                x = torch.randn(32, 3)
                for epoch in range(10):
                    opt.zero_grad()
                    loss = ((net(x) - x.sum(1, keepdim=True)) ** 2).mean()
                    loss.backward()
                    opt.step()
                return net.state_dict()

            @ex.result
            def done(weights):
                return float(weights["weight"].sum())

            done(train(lr))
            """
        )
    )
    store = tmp_path / "s.duckdb"
    for _ in range(2):
        proc = subprocess.run(
            [TUIXP, "--store", str(store), "run", str(script), "--seed", "7"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env_with_path(),
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
    rows = formats(store)
    assert [f for _, f, _ in rows] == ["torch", "torch"]
    assert rows[0][2] == rows[1][2]


@pytest.mark.slow
def test_the_pytorch_example_in_the_docs_runs(tmp_path: Path) -> None:
    """docs/python-api.md's PyTorch example, as written: run as a script (its __main__ block
    checks that the same seed gives the same weights), then by `tuixp run`."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text()
    section = docs.split("## PyTorch\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "train.py"
    script.write_text(code)
    env = env_with_path()
    env["TUIXP_STORE"] = str(tmp_path / "s.duckdb")
    ran = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    logged = Path(ran.stdout.strip().splitlines()[-1])  # get_artifact's path: the bytes' hash
    assert hashlib.sha256(logged.read_bytes()).hexdigest() == logged.name
    assert logged.read_bytes() == (tmp_path / "model.pt").read_bytes()
    again = subprocess.run(
        [TUIXP, "run", str(script), "lr=0.1"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    rows = formats(tmp_path / "s.duckdb")
    assert [f for _, f, _ in rows] == ["torch", "torch", "torch"]
    assert rows[0][2] == rows[1][2] != rows[2][2]  # seed 0 twice; then another lr
