"""The command line itself: one KEY=VALUE parser behind --set, --limit, --dim and --data-option, choices
that keep their messages, and train options generated from TrainConfig (no training here)."""

from __future__ import annotations

from typing import Literal, Optional

import pytest
from pydantic import Field
from typer.testing import CliRunner

from conftest import SPECS
from specgraph.cli.app import app
from specgraph.cli.train import config_options
from specgraph.train.config import TrainConfig

LENET = str(SPECS / "lenet5.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize("args, message", [
    (["check", LENET, "--set", "nonsense"], "Invalid value for --set: expected KEY=VALUE, found 'nonsense'"),
    (["check", LENET, "--set", "=3"], "expected KEY=VALUE, found '=3'"),
    (["check", LENET, "--limit", "max_repeat=many"], "Invalid value for --limit: expected NAME=INTEGER, found "
                                                     "'max_repeat=many'"),
    (["check", LENET, "--limit", "nope=3"], "unknown limit(s): nope; known: max_block_depth"),
    (["summary", LENET, "--dim", "N"], "Invalid value for --dim: expected NAME=INTEGER of at least 1, found 'N'"),
    (["summary", LENET, "--dim", "1N=3"], "expected NAME=INTEGER of at least 1, found '1N=3'"),
    (["summary", LENET, "--dim", "N=²"], "expected NAME=INTEGER of at least 1, found 'N=²'"),
    (["export", LENET, "--python", "x.py", "--dim", "N=1"], "expected NAME=INTEGER of at least 2, found 'N=1'"),
    (["train", LENET, "-D", "nothing"], "Invalid value for --data-option: expected KEY=VALUE, found 'nothing'"),
    (["check", LENET, "--format", "xml"], "Invalid value for --format: expected text or json"),
    (["summary", LENET, "--format", "yaml"], "Invalid value for --format: expected text or json"),
    (["build", LENET, "--optimize", "speed"], "Invalid value for --optimize: expected inference, found 'speed'"),
    (["build", LENET, "--backend", "tvm"], "Invalid value for --backend: expected torch or onnxruntime, found 'tvm'"),
    (["build", LENET, "--backend", "onnxruntime", "--code"], "--code and --save need the torch backend"),
    (["export", LENET, "--python", "x.py", "--optimize", "fast"], "expected inference, found 'fast'"),
    (["render", LENET, "--rankdir", "XX"], "Invalid value for --rankdir: expected TB or LR, found 'XX'"),
    (["render", LENET, "--format", "jpg"], "Invalid value for --format: expected one of svg, png, pdf, dot, html, found 'jpg'"),
])
def test_usage_errors_exit_2_with_their_message(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.replace("│", " ").split()), r.output
    assert "Traceback" not in r.output


def test_overrides_and_limits_reach_the_spec():
    r = invoke("check", LENET, "--set", "num_classes=7", "--limit", "max_repeat=5")
    assert r.exit_code == 0 and "out [N, 7]" in r.output


def test_rankdir_is_a_choice_in_any_case():
    r = invoke("render", LENET, "-f", "dot", "-o", "-", "--rankdir", "lr")
    assert r.exit_code == 0 and "rankdir=LR" in r.output
    assert "<TB|LR|BT|RL>" in invoke("render", "--help").output
    assert "<text|json>" in invoke("check", "--help").output and "<inference>" in invoke("build", "--help").output


# ---------------------------------------------------------------- train: options from TrainConfig

class Extended(TrainConfig):
    label_smoothing: float = Field(0.0, ge=0, description="Smooth the targets by this much.")
    schedule: Literal["none", "cosine"] = Field("none", description="Learning-rate schedule.")
    ema: bool = Field(True, description="Keep an exponential moving average of the weights.")
    tags: list[str] = Field(default_factory=list, description="Labels of the run.")


def test_a_new_field_is_a_new_option():
    options = {o.field: o for o in config_options(Extended)}
    assert set(options) == set(Extended.model_fields)
    smoothing, schedule, ema, tags = (options[k] for k in ("label_smoothing", "schedule", "ema", "tags"))
    assert smoothing.flags == ("--label-smoothing",) and smoothing.annotation == Optional[float]
    assert smoothing.info.help == "Smooth the targets by this much. \\[default: 0.0]"  # the model's default, escaped for rich
    assert schedule.annotation == Optional[Literal["none", "cosine"]]
    assert ema.flags == ("--no-ema",) and ema.setting(True) is False and ema.setting(False) is None
    assert tags.setting(("a", "b")) == ["a", "b"] and tags.setting(()) is None


@pytest.fixture
def captured(monkeypatch):
    """Calls of specgraph.train.train by the command, instead of a run."""
    import importlib

    calls = []
    package = importlib.import_module("specgraph.train")  # `specgraph.train` is also the function
    monkeypatch.setattr(package, "train", lambda spec, **kwargs: calls.append((spec, kwargs)))
    return calls


def test_train_options_become_settings(captured, tmp_path):
    r = invoke("train", LENET, "-d", "digits", "-D", "split=0.8,0.1,0.1", "-D", "window=5", "--epochs", "2",
               "--optimizer", "sgd", "--momentum", "0.5", "--devices", "2", "--precision", "bf16-mixed",
               "--freeze", "c1.*", "--freeze", "c3.*", "--augment", "flip", "--out", str(tmp_path / "run"),
               "--resume", "--no-progress", "--limit-train-batches", "0.25", "--limit-val-batches", "3",
               "--aux-weight", "0", "-c", "settings.yaml", "-s", "num_classes=7")
    assert r.exit_code == 0, r.output
    [(spec, kwargs)] = captured
    assert str(spec) == LENET and kwargs.pop("config") == "settings.yaml" and kwargs.pop("params") == {"num_classes": 7}
    given = {k: v for k, v in kwargs.items() if v is not None}
    assert given == {"data": "digits", "data_options": {"split": "0.8,0.1,0.1", "window": 5}, "epochs": 2,
                     "optimizer": "sgd", "momentum": 0.5, "devices": 2, "precision": "bf16-mixed",
                     "freeze": ["c1.*", "c3.*"], "augment": ["flip"], "out": str(tmp_path / "run"), "resume": True,
                     "progress": False, "limit_train_batches": 0.25, "limit_val_batches": 3, "aux_weight": 0.0}
    assert set(kwargs) == set(TrainConfig.model_fields)


def test_train_options_not_given_leave_the_settings_alone(captured):
    assert invoke("train", LENET, "--devices", "auto").exit_code == 0
    [(_, kwargs)] = captured
    assert kwargs.pop("config") is None and kwargs.pop("params") == {}
    assert {k: v for k, v in kwargs.items() if v is not None} == {"devices": "auto"}


def test_a_wrong_choice_is_the_settings_error_wherever_it_is_written():
    """TrainConfig validates the command line like the spec's train: section: E203, exit 1."""
    pytest.importorskip("lightning")
    r = invoke("train", LENET, "--data", "digits", "--optimizer", "adamm")
    assert r.exit_code == 1 and "error[E203]: training setting 'optimizer': Input should be 'sgd', 'adam' or " \
                                "'adamw'; found 'adamm'" in r.output
