"""Run directories: round trips, atomic saves, and refusal of corrupt, truncated and hostile files."""

import json
import os
import pickle

import pytest
import torch

import rnnkit
from rnnkit import checkpoint
from rnnkit.checkpoint import CheckpointError
from rnnkit.models import load_model, save_model


def trained_pair():
    torch.manual_seed(0)
    model = rnnkit.GRU(3, 4, 2, bidirectional=True, reset="before", layer_norm=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    out, _ = model(torch.randn(5, 2, 3))
    out.sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model, optimizer = trained_pair()
    save_model(tmp_path / "run", model, optimizer=optimizer, config={"task": "demo"})
    assert sorted(os.listdir(tmp_path / "run")) == ["config.json", "model.safetensors", "optimizer.pt"]
    loaded = load_model(tmp_path / "run", task="demo")
    assert type(loaded) is rnnkit.GRU and loaded.config == model.config
    x = torch.randn(4, 1, 3)
    torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    state = checkpoint.load_training_state(tmp_path / "run")
    fresh = torch.optim.Adam(loaded.parameters(), lr=0.01)
    fresh.load_state_dict(state["optimizer"])
    assert fresh.state_dict()["state"][0]["step"] == 1


def test_run_of_another_task_is_refused(tmp_path):
    model, _ = trained_pair()
    save_model(tmp_path, model, config={"task": "lm"})
    with pytest.raises(CheckpointError, match="is a 'lm' run, not a 'classify' run"):
        load_model(tmp_path, task="classify")


def test_missing_directory_and_non_run_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_model(tmp_path)


def test_kill_mid_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, _ = trained_pair()
    save_model(tmp_path, model)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were interrupted while writing the weights

    monkeypatch.setattr(checkpoint, "_save_safetensors_model", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path, model)
    after = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert after == before, "no temporary file left behind and nothing overwritten"
    load_model(tmp_path)


def test_truncated_weights_are_refused(tmp_path):
    model, _ = trained_pair()
    save_model(tmp_path, model)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
        load_model(tmp_path)


def test_weights_of_another_model_are_refused(tmp_path):
    model, _ = trained_pair()
    save_model(tmp_path, model)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["config"]["hidden_size"] = 5
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="corrupt or truncated|does not match"):
        load_model(tmp_path)


def test_corrupt_config_is_refused(tmp_path):
    model, _ = trained_pair()
    save_model(tmp_path, model)
    (tmp_path / "config.json").write_text('{"format": "rnnkit-run", "vers')
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"format": "rnnkit-run", "version": 1, "model": {"type": "os.system", "config": {}}})
    )
    with pytest.raises(CheckpointError, match="unknown model type 'os.system'"):
        load_model(tmp_path)


class Exploit:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_hostile_pickle_is_refused_without_running(tmp_path):
    model, _ = trained_pair()
    save_model(tmp_path, model)
    marker = tmp_path / "pwned"
    with open(tmp_path / "optimizer.pt", "wb") as f:
        pickle.dump({"optimizer": Exploit(str(marker))}, f)
    # the same payload in torch's zip format
    torch.save({"optimizer": Exploit(str(marker))}, tmp_path / "zip.pt")
    with pytest.raises(CheckpointError, match="refused without running it"):
        checkpoint.load_training_state(tmp_path)
    os.replace(tmp_path / "zip.pt", tmp_path / "optimizer.pt")
    with pytest.raises(CheckpointError, match="refused without running it"):
        checkpoint.load_training_state(tmp_path)
    assert not marker.exists()


def test_metrics_log_survives_a_torn_line(tmp_path):
    checkpoint.append_jsonl(tmp_path / "metrics.jsonl", {"step": 1, "loss": 2.0})
    checkpoint.append_jsonl(tmp_path / "metrics.jsonl", {"step": 2, "loss": float("nan")})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')
    assert checkpoint.read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": None}]
