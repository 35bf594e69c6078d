import pytest

from genrec.config import ConfigError, load_config, parse_overrides
from genrec.experiments.seq import SeqRunConfig


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain: {epochs: 3}\ntokenizer: {train: {epochs: 7}}\n")
    cfg = load_config(SeqRunConfig, path, ["train.lr=0.5", "seeds=[1,2]"])
    assert (cfg.name, cfg.train.epochs, cfg.train.lr, cfg.seeds) == ("x", 3, 0.5, [1, 2])
    # a partial nested section keeps that field's own defaults (the tokenizer's loop monitors "score")
    assert cfg.tokenizer.train.epochs == 7 and cfg.tokenizer.train.monitor == "score"


def test_base_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ntrain: {epochs: 3, lr: 0.1}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {epochs: 9}\n")
    cfg = load_config(SeqRunConfig, tmp_path / "child.yaml")
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ("base", 9, 0.1)


def test_unknown_keys_and_bad_overrides_are_errors():
    with pytest.raises(ConfigError, match=r"train: unknown key\(s\) \['epoch'\]"):
        load_config(SeqRunConfig, overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.epochs"])


def test_shipped_configs_load():
    from pathlib import Path

    from genrec.experiments.baselines import BaselineRunConfig
    from genrec.experiments.ctr.grid import CtrRunConfig

    configs = sorted((Path(__file__).parents[1] / "recipes" / "configs").glob("**/*.yaml"))
    assert len(configs) >= 7
    for path in configs:  # ctr_*.yaml configure recipes/train_ctr.py, sasrec* train_baseline.py, the rest train_seq.py
        kind = CtrRunConfig if path.name.startswith("ctr_") else BaselineRunConfig if "sasrec" in path.name else SeqRunConfig
        load_config(kind, path)


@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
    ("train.epochs=1.5", "train.epochs: expected an integer, got 1.5"),
    ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
    ("train.max_minutes=abc", "train.max_minutes: expected a number"),
    ("decode.beam=abc", "decode.beam: expected an integer"),
    ("train.progress=maybe", "train.progress: expected true or false"),
    ("seeds=1", "seeds: expected a list of int"),
    ("seeds=", "seeds: expected a list of int"),
    ("seeds=[1,1]", r"seeds \[1\] appear more than once"),
    ("name=", "name must be a non-empty file name"),
    ("data.max_users=-2", "data: max_users must be 0"),
    ("decode.topk=30", "topk must be between 1 and the beam width 20"),
    ("objective.kind=sometimes", "kind must be window or every_position"),
    ("objective.kind=window", "model.decoder=item_table needs objective.kind=every_position"),
    ("mode=two_stage", "objective.kind=every_position needs item vectors as input"),
    ("model.decoder=plain", "decoder must be one of tiger, item_table, got 'plain'"),
    ("model.item_score_precision=fp16", "item_score_precision must be one of auto, fp32, bf16"),
    ("data.embedding_precision=half", "embedding_precision must be one of auto, fp32, bf16"),
    ("train.mixed_precision=half", "mixed_precision must be auto, no, bf16 or fp16"),
    ("items.semantic=false", None),  # the ID part alone is a valid item (the ID-only ablation)
])
def test_bad_values_fail_before_any_work_with_key_value_and_type(override, message):
    if message is None:
        load_config(SeqRunConfig, overrides=[override])
        return
    with pytest.raises(ConfigError, match=message):
        load_config(SeqRunConfig, overrides=[override])


def test_an_item_without_any_part_is_refused():
    with pytest.raises(ConfigError, match="an item needs at least one part"):
        load_config(SeqRunConfig, overrides=["items.id_dim=0", "items.semantic=false"])


def test_the_defaults_are_the_shipped_model():
    cfg = SeqRunConfig()
    assert (cfg.mode, cfg.objective.kind, cfg.model.decoder, cfg.model.d_model) == ("unified", "every_position", "item_table", 64)
    assert cfg.model.item_score_precision == cfg.data.embedding_precision == "auto"
    assert cfg.train.epochs >= 1 and cfg.train.max_minutes > 0  # a fixed number of epochs, the budget a safety cap
    # the window objective with TIGER's decoder is the other formulation
    load_config(SeqRunConfig, overrides=["objective.kind=window", "model.decoder=tiger", "mode=two_stage"])


def test_command_line_text_stays_text_and_numbers_widen():
    cfg = load_config(SeqRunConfig, overrides=["train.mixed_precision=no", "name=123", "train.lr=1",
                                               "tokenizer.distances=[cosine,euclidean,euclidean]"])
    assert cfg.train.mixed_precision == "no" and cfg.name == "123" and cfg.train.lr == 1.0
    assert cfg.tokenizer.distances == ["cosine", "euclidean", "euclidean"]
    assert load_config(SeqRunConfig, overrides=["tokenizer.distances=euclidean"]).tokenizer.distances == "euclidean"


def test_exponent_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads `1e-3` as text; a float field still takes it, from the command line and from a file."""
    assert load_config(SeqRunConfig, overrides=["train.lr=1e-3"]).train.lr == 1e-3
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-4\n")
    assert load_config(SeqRunConfig, path).train.lr == 3e-4
