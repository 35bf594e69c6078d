"""Every bf16 switch resolves `auto` by the hardware: bf16 only where it is native; forcing it elsewhere warns once."""
import warnings

import pytest
import torch

from genrec import hardware
from genrec.training import TrainConfig, make_accelerator


@pytest.fixture(params=[True, False], ids=["native", "emulated"])
def native(request, monkeypatch):
    """Fake the capability check both ways (the real machine may have either)."""
    monkeypatch.setattr(hardware, "_native_bf16", lambda device_type: request.param)
    monkeypatch.setattr(hardware, "_warned", set())
    return request.param


def test_auto_is_bf16_exactly_where_native(native):
    assert hardware.use_bf16("auto", "cpu", "x") is native
    assert hardware.use_bf16("fp32", "cpu", "x") is False
    assert ("native bf16" in hardware.describe()) and (("no native bf16" in hardware.describe()) is not native)
    with pytest.raises(ValueError, match="x must be one of auto, fp32, bf16, got 'fp16'"):
        hardware.use_bf16("fp16", "cpu", "x")


def test_forcing_bf16_where_it_is_emulated_warns_once_with_its_cost(native):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert hardware.use_bf16("bf16", "cpu", "model.item_score_precision") is True
        assert hardware.use_bf16("bf16", "cpu", "model.item_score_precision") is True
    messages = [str(w.message) for w in caught]
    if native:
        assert messages == []
    else:
        assert len(messages) == 1 and "emulated" in messages[0] and "7x slower" in messages[0]


def test_mixed_precision_auto_follows_the_hardware(native):
    accelerator = make_accelerator(TrainConfig(mixed_precision="auto"))
    assert accelerator.mixed_precision == ("bf16" if native else "no")
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"  # a new precision, one process


def test_item_scores_auto_take_the_bf16_path_only_where_native(native):
    from test_every_position import toy_data, toy_model

    from genrec.data.splits import training_rows

    rows = training_rows(toy_data(), max_history=8)
    history, target, users = (torch.from_numpy(x) for x in (rows.history, rows.target, rows.user))
    model = toy_model(item_score_precision="auto").train()
    labels = model.codes.tokens(target)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = model(history, users, labels, target, every_position=True)["dense"]
        model.seq2seq.item_score_precision = "bf16" if native else "fp32"
        expected = model(history, users, labels, target, every_position=True)["dense"]
    assert auto == expected
