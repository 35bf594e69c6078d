"""One config system: nested dataclasses, filled from YAML and then `key.sub=value` overrides.

Unknown keys are errors (a typo in a config must never be silently ignored), and every value is checked
against its field's type (int, float, bool, str, lists and unions of these) before any work starts, so
`train.epochs=abc` fails at once with the key, the value and the type it needs. A dataclass may add a
`validate()` method for ranges (positive sizes and the like); it runs once the section is built.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from genrec.errors import GenrecError
from genrec.files import write_atomic

T = TypeVar("T")


class ConfigError(GenrecError, ValueError):
    """A config key or value that is not valid; the message names the key."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _parse(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return str(raw)  # e.g. `seeds=[1,2`: the type check then says what was expected


class RawText(str):
    """A command-line value before parsing: a str field takes it as written (`train.mixed_precision=no` is the
    text "no", not YAML's False); any other field parses it as YAML first."""


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """`value` as type `tp`, or a ConfigError naming the key, the value and what it needs."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    raw = value if isinstance(value, RawText) else None
    if raw is not None:
        value = _parse(raw)
        if tp is str:  # quoted YAML text loses its quotes; anything else is the text as written
            return value if isinstance(value, str) else str(raw)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is str and raw is not None:
                continue  # text is the last resort for a command-line value: `[a, b]` is meant as a list
            try:
                return _coerce(value, option, path)
            except ConfigError:
                continue
        if str in options and raw is not None and not isinstance(value, (list, dict)):
            return value if isinstance(value, str) else str(raw)
        raise ConfigError(f"{path}: {value!r} is not a valid {_describe(tp)}")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list of {_describe(item)} (e.g. [1, 2]), got {value!r}")
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected text, got {value!r} (in YAML, quote it: {path.rsplit('.', 1)[-1]}: 'no')")
    return value


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        tp = hints[key]
        path = f"{where}.{key}" if where else key
        if _is_dataclass_type(tp):
            # a partial section overrides the field's own defaults, not the section class's bare defaults
            factory = fields[key].default_factory
            base = dataclasses.asdict(factory()) if factory is not dataclasses.MISSING else {}
            value = _build(tp, _merge(base, value) if isinstance(value, dict) else value, path)
        else:
            value = _coerce(value, tp, path)
        kwargs[key] = value
    built = cls(**kwargs)
    validate = getattr(built, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as err:
            raise ConfigError(f"{where + ': ' if where else ''}{err}") from err
    return built


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """`a.b=3 c=[1,2]` -> nested dict, values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.epochs=5)")
        key, raw = item.split("=", 1)
        _set_path(out, key.strip().lstrip("-"), RawText(raw))
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        base = data.pop("_base_", None)
        if base is not None:  # configs may inherit: `_base_: beauty_gpu.yaml`
            parent = to_dict(load_config(cls, path.parent / base))
            data = _merge(parent, data)
    data = _merge(data, parse_overrides(overrides))
    return _build(cls, data, "")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def check(condition: bool, message: str) -> None:
    """For `validate()` methods: a ValueError that the loader reports with the section's name."""
    if not condition:
        raise ValueError(message)


def check_run(name: str, seeds: list[int]) -> None:
    """What every run config needs: a name for its folder and results file, and distinct seeds."""
    check(bool(name.strip()) and "/" not in name, f"name must be a non-empty file name, got {name!r}")
    check(len(seeds) > 0, "seeds must list at least one seed, e.g. seeds=[42]")
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    check(not duplicates, f"seeds {duplicates} appear more than once in {seeds}; each seed is one fit")


def save_config(cfg: Any, path: str | Path) -> None:
    write_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def recipe_cli(cls: type[T], doc: str | None, script: str, default_config: str | Path | None = None) -> tuple[T, str]:
    """The command line every training recipe shares: `--config FILE` then `key=value` overrides.
    Returns the config and the command to record in results."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help=f"YAML config (default: {default_config or 'the dataclass defaults'})")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=5 seeds=[1,2,3]")
    args = parser.parse_args()
    cfg = load_config(cls, args.config or default_config, args.overrides)
    return cfg, f"accelerate launch {script} " + " ".join(sys.argv[1:])
