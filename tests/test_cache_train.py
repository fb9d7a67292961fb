import pytest
import torch

from negspike.cache import cached, config_key
from negspike.data import synthetic_dataset
from negspike.models import Net4
from negspike.train import DivergenceError, evaluate_ann, train_ann


def test_cache_builds_once_and_keys_on_config(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.ones(3) * len(calls)}

    a = cached("step", {"lr": 0.1, "epochs": 2}, build, tmp_path)
    b = cached("step", {"epochs": 2, "lr": 0.1}, build, tmp_path)  # same config, other key order
    assert len(calls) == 1 and torch.equal(a["w"], b["w"])
    c = cached("step", {"lr": 0.2, "epochs": 2}, build, tmp_path)
    assert len(calls) == 2 and c["w"][0] == 2
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_corrupted_checkpoint_is_reported_and_rebuilt(tmp_path):
    cfg = {"x": 1}
    cached("step", cfg, lambda: 1, tmp_path)
    (path,) = tmp_path.glob("step-*.pt")
    path.write_bytes(path.read_bytes()[:10])
    with pytest.warns(UserWarning, match=f"rebuilding unreadable checkpoint {path}"):
        assert cached("step", cfg, lambda: 2, tmp_path) == 2
    assert cached("step", cfg, lambda: 3, tmp_path) == 2  # the rebuilt file is valid
    assert not list(tmp_path.glob("*.tmp"))


def test_training_learns_synthetic_data():
    torch.manual_seed(0)
    x, y = synthetic_dataset("fmnist", 512, noise=2.0)
    xt, yt = synthetic_dataset("fmnist", 256, noise=2.0, seed=5)
    model = Net4()
    before = evaluate_ann(model, xt, yt)
    hist = train_ann(model, (x, y), epochs=2, lr=1e-3, batch_size=64, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert evaluate_ann(model, xt, yt) > max(0.5, before + 0.3)


def test_divergence_names_step_epoch_and_last_loss():
    x, y = synthetic_dataset("fmnist", 64)
    model = Net4()
    calls = {"n": 0}

    def blow_up(model, logits, ce):
        calls["n"] += 1
        return torch.tensor(float("nan")) if calls["n"] > 1 else torch.tensor(0.0)

    with pytest.raises(DivergenceError, match=r"finetune: loss became nan in epoch 1; last finite loss \d"):
        train_ann(model, (x, y), 1, batch_size=32, extra_loss=blow_up, step_name="finetune", progress=False)
