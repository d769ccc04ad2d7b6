"""Checkpoints: a resumed run ends as an uninterrupted one; the loop's early-stopping record;
checkpoints of another configuration or site split are refused."""

from __future__ import annotations

import pytest
import torch

from fluxbridge.errors import InputError
from fluxbridge.training import TrainingInterrupted
from fluxbridge.training.checkpoint import CHECKPOINT_NAME, Checkpoint, LoopState, fingerprint


def _weights(model) -> dict[str, torch.Tensor]:
    return model.estimator.state_dict()


@pytest.mark.parametrize(("features", "group_size", "dropout"),
                         [("monthly", 1, 0.1), ("daily", 4, 0.0)])
def test_resume_after_interruption_gives_same_weights(sites, configure, fit, tmp_path,
                                                      features, group_size, dropout):
    """Also with the control variate's cache rebuilt every second epoch: interrupted after
    epoch 3, the resumed run rebuilds the cache from the network of the checkpoint's
    ``cache_state`` (epoch 2's start), not from the network as it stands, and rebuilds it
    again only when due (epoch 4)."""
    cfg = configure(
        network={"epochs": 5, "dropout": dropout, "batch_size": 128},
        constraint={"lambda_regional": 1.0, "estimator": "control_variate"},
        tuning={"cache": {"refresh_every": 2, "features": features,
                          "group_size": group_size}})
    train, val = sites[:-5], sites[-5:]
    reference = fit(train, cfg, val_sites=val)
    with pytest.raises(TrainingInterrupted):
        fit(train, cfg, val_sites=val, checkpoint_dir=tmp_path, stop_after_epochs=3)
    assert (tmp_path / CHECKPOINT_NAME).exists()
    resumed = fit(train, cfg, val_sites=val, checkpoint_dir=tmp_path)
    assert resumed.provenance["epochs_run"] == 5
    assert resumed.provenance["history"] == reference.provenance["history"]
    assert [h["refreshes"] for h in resumed.provenance["history"]] == [1, 0, 1, 0, 1]
    for key, value in _weights(reference).items():
        torch.testing.assert_close(value, _weights(resumed)[key], rtol=0, atol=0)
    # a finished run is not retrained, and a different configuration is refused
    again = fit(train, cfg, val_sites=val, checkpoint_dir=tmp_path)
    torch.testing.assert_close(_weights(again), _weights(resumed), rtol=0, atol=0)
    with pytest.raises(InputError, match="checkpoint"):
        fit(train, cfg.model_copy(update={"network": cfg.network.model_copy(
            update={"lr": 1e-4})}), val_sites=val, checkpoint_dir=tmp_path)


def test_fingerprint_depends_on_the_settings_and_the_sites_not_their_order(small):
    key = small.training_key()
    base = fingerprint(key, ["A", "B", "C"], ["D"])
    assert fingerprint(key, ["C", "A", "B"], ["D"]) == base
    assert fingerprint(key, ["A", "B"], ["C", "D"]) != base  # a site moved to validation
    assert fingerprint(key, ["A", "B", "C"], None) != base
    assert fingerprint(small.with_seed(1).training_key(), ["A", "B", "C"], ["D"]) != base
    assert small.with_lambda(2.0).training_key() != key
    assert small.model_copy(update={"progress": False}).training_key() == key  # not training


def test_loop_state_keeps_the_best_epoch_and_stops_after_patience():
    """Validation losses 3, 2, 2.5, 1, 1.5, 1.2 with patience 2: epochs 2 and 4 improve, the
    loop stops after epoch 6 (two epochs without improvement), keeping epoch 4's weights."""
    model = torch.nn.Linear(1, 1, bias=False)
    loop = LoopState(best_state={"weight": torch.zeros(1, 1)})
    for epoch, val in enumerate([3.0, 2.0, 2.5, 1.0, 1.5, 1.2], start=1):
        assert not loop.done
        with torch.no_grad():
            model.weight.fill_(epoch)
        loop.record({"val": val}, model, patience=2, epochs=10)
    assert loop.done and loop.epoch == 6 and loop.best_epoch == 4 and loop.best_val == 1.0
    assert float(loop.best_state["weight"]) == 4.0
    assert [h["val"] for h in loop.history] == [3.0, 2.0, 2.5, 1.0, 1.5, 1.2]
    # without validation every epoch is the best, and the loop ends at the last epoch
    loop = LoopState(best_state={})
    for epoch in range(1, 4):
        with torch.no_grad():
            model.weight.fill_(epoch)
        loop.record({"val": None}, model, patience=1, epochs=3)
        assert loop.best_epoch == epoch and loop.done == (epoch == 3)
    assert float(loop.best_state["weight"]) == 3.0


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"not a torch file"])
def test_a_corrupt_checkpoint_is_refused_in_one_line_naming_the_file(tmp_path, content):
    (tmp_path / CHECKPOINT_NAME).write_bytes(content)
    checkpoint = Checkpoint(tmp_path, key="k")
    with pytest.raises(InputError) as err:
        checkpoint.restore(trainer=None)  # type: ignore[arg-type]
    message = str(err.value)
    assert CHECKPOINT_NAME in message and "\n" not in message
    assert "weights_only=False" not in message
