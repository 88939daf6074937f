"""Dataset options: `data_options:` in the settings and `--data-option KEY=VALUE` on the command line.

Each loader declares what it accepts; an option changes the data it makes, an unknown option or a
value of the wrong type is a located E709 error (exit code 1, no traceback). Data loading only,
except one tiny run that checks the resolved options land in the run folder's config.yaml."""

from __future__ import annotations

import shutil

import pytest
import yaml

pytest.importorskip("lightning")
pytest.importorskip("gensim")
pytest.importorskip("statsmodels")
pytest.importorskip("tifffile")

from typer.testing import CliRunner  # noqa: E402

import specgraph  # noqa: E402
from conftest import SPECS  # noqa: E402
from specgraph.cli.app import app  # noqa: E402
from specgraph.diagnostics import SpecError  # noqa: E402
from specgraph.train import datasets, load_dataset, resolve_config  # noqa: E402

FORECASTER = SPECS / "lstm_forecaster.yaml"
SKIPGRAM = SPECS / "skipgram.yaml"
CHAR_LSTM = SPECS / "char_lstm.yaml"
SMALL_FORECASTER = dict(hidden=4)


def forecaster_text(folder) -> str:
    """lstm_forecaster.yaml's text, its included cells copied to ``folder`` for a copy written there."""
    if not (folder / "cells").exists():
        shutil.copytree(SPECS / "cells", folder / "cells")
    return FORECASTER.read_text()


def bundle(spec, data, options=None, **params):
    graph = specgraph.check(spec, **params)
    predictions = {o.name: o.value.type for o in graph.outputs if not o.train_only}
    return load_dataset(data, graph.inputs, 0, predictions, options)


def error(spec, data, options, **params) -> SpecError:
    with pytest.raises(SpecError) as e:
        bundle(spec, data, options, **params)
    return e.value


# ---------------------------------------------------------------- options change the data

def test_word2vec_min_count_subsample_and_window_change_the_data():
    base = bundle(SKIPGRAM, "lee")
    assert base.options == {"min_count": 5, "subsample": 0.001, "window": 5, "split": [0.9, 0.05, 0.05]}
    rare = bundle(SKIPGRAM, "lee", {"min_count": 10})
    assert rare.vocab < base.vocab and rare.spec_params == {"vocab": rare.vocab}
    narrow = bundle(SKIPGRAM, "lee", {"window": 2})
    assert narrow.vocab == base.vocab and len(narrow.train) < 0.6 * len(base.train)
    kept = bundle(SKIPGRAM, "lee", {"subsample": 0})  # no subsampling: more training pairs
    assert len(kept.train) > len(base.train) and kept.meta["subsample"] == 0
    assert len(bundle(SKIPGRAM, "lee", {"subsample": "1e-3"}).train) == len(base.train)  # YAML's 1e-3 is text
    wider = bundle(SKIPGRAM, "lee", {"split": "0.8,0.1,0.1"})
    assert wider.meta["split"]["val"] > 2 * base.meta["split"]["val"] - 2


def test_lm_seq_len_sets_the_example_length_and_conflicts_with_a_fixed_one(tmp_path):
    default, short = bundle(CHAR_LSTM, "lee"), bundle(CHAR_LSTM, "lee", {"seq_len": 16})
    assert default.train[0][0].shape == (64,) and short.train[0][0].shape == (16,)
    assert short.options == {"seq_len": 16, "split": [0.9, 0.05, 0.05]}
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(CHAR_LSTM.read_text().replace("[N, T]", "[N, 32]"))
    assert bundle(fixed, "lee", {"seq_len": 32}).train[0][0].shape == (32,)
    e = error(fixed, "lee", {"seq_len": 16})
    assert e.codes == ["E709"] and "seq_len=16 conflicts with the spec's sequence length T 32" in e.format()
    e = error(CHAR_LSTM, "lee", {"min_count": 2})  # a word2vec option for a language model
    assert e.codes == ["E709"] and "does not apply to a character language model" in e.format()


def test_forecasting_window_horizon_and_split(tmp_path):
    base = bundle(FORECASTER, "sunspots", **SMALL_FORECASTER)
    assert base.train[0][0].shape == (20, 1) and base.options["window"] == 20
    wide = bundle(FORECASTER, "sunspots", {"window": 30, "split": [0.8, 0.1, 0.1]}, **SMALL_FORECASTER)
    assert wide.train[0][0].shape == (30, 1)
    assert wide.options == {"window": 30, "horizon": 1, "split": [0.8, 0.1, 0.1]}
    assert len(wide.val) < len(base.val)
    assert bundle(FORECASTER, "sunspots", {"horizon": 3}, horizon=3, **SMALL_FORECASTER).train[0][1].shape == (3,)
    e = error(FORECASTER, "sunspots", {"horizon": 3}, **SMALL_FORECASTER)  # the spec fixes horizon: 1
    assert e.codes == ["E709"] and "conflicts with the spec's prediction length 1" in e.format()
    assert "--set horizon=3" in e.format()
    fixed = tmp_path / "f.yaml"
    fixed.write_text(forecaster_text(tmp_path).replace("[N, T, $features]", "[N, 12, $features]"))
    e = error(fixed, "sunspots", {"window": 30}, **SMALL_FORECASTER)
    assert e.codes == ["E709"] and "window=30 conflicts with the spec's input length 12" in e.format()


def test_crop_size_and_stride():
    small = dict(size=64, depth=2, base=8)
    base = bundle(SPECS / "unet_padded.yaml", "nuclei", **small)
    assert base.options == {"size": 64, "stride": 32, "split": [0.5, 0.25, 0.25]}
    sparse = bundle(SPECS / "unet_padded.yaml", "nuclei", {"stride": 64}, **small)
    assert len(sparse.train) < len(base.train) and sparse.train[0][0].shape == (1, 64, 64)
    other = bundle(SPECS / "unet_padded.yaml", "nuclei", {"size": 32}, **small)
    assert other.train[0][0].shape == (1, 32, 32) and other.spec_params["size"] == 32  # a `size` param follows


# ---------------------------------------------------------------- mistakes

def test_unknown_option_and_wrong_type_are_e709():
    e = error(SKIPGRAM, "lee", {"min_cont": 3, "window": "wide"})
    assert e.codes == ["E709", "E709"]
    text = e.format()
    assert "unknown option 'min_cont' of dataset 'lee'" in text and "did you mean 'min_count'?" in text
    assert "option 'window' of dataset 'lee' must be an integer; found 'wide'" in text
    assert "must be an integer >= 1" in error(SKIPGRAM, "lee", {"min_count": 0}).format()
    assert "true or false" not in text
    e = error(SKIPGRAM, "lee", {"split": "0.5,0.4"})
    assert "three fractions" in e.format()
    e = error(SPECS / "lenet5.yaml", "digits", {"size": 3})
    assert "unknown option 'size' of dataset 'digits'" in e.format() and "options of 'digits': split" in e.format()


def test_every_dataset_declares_typed_options():
    known = datasets()
    expected = {"lee": {"min_count", "subsample", "window", "seq_len", "split"},
                "sunspots": {"window", "horizon", "split"}, "csv": {"window", "horizon", "split"},
                "nuclei": {"size", "stride", "split"}, "segfolder": {"size", "stride", "split"}}
    for name, options in expected.items():
        assert options <= set(known[name].options), name
    assert known["lee"].options["min_count"].default == 5 and known["lee"].options["subsample"].default == 0.001


# ---------------------------------------------------------------- settings layers and the command line

def test_data_options_merge_key_by_key_and_the_command_line_wins(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(forecaster_text(tmp_path) + "train:\n  data: sunspots\n  data_options: {window: 10, split: "
                                             "[0.8, 0.1, 0.1]}\n")
    (tmp_path / "s.yaml").write_text("data_options:\n  window: 14\n  horizon: 1\n")
    loaded = specgraph.load(spec)
    c = resolve_config(loaded.doc.train, loaded.source, tmp_path / "s.yaml", {"data_options": {"window": 16}})
    assert c.data_options == {"window": 16, "split": [0.8, 0.1, 0.1], "horizon": 1}
    assert c.option_places["window"] is None  # the command line
    assert c.option_places["split"].line == len(FORECASTER.read_text().splitlines()) + 3
    assert c.option_places["horizon"].file.endswith("s.yaml")
    e = pytest.raises(SpecError, resolve_config, {"data_options": {"window": [1, "a"]}}).value
    assert e.codes == ["E203"] and "a list of numbers" in e.format()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["train", *map(str, args), "--no-progress"])


def test_cli_and_spec_options_reach_the_loader_and_the_run_folder(cli, tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(forecaster_text(tmp_path).replace("hidden: 64", "hidden: 4")
                    + "train:\n  data: sunspots\n  data_options: {window: 10, split: [0.8, 0.1, 0.1]}\n")
    r = cli(spec, "--data-option", "window=6", "-D", "horizon=1", "--epochs", "1", "--threads", "1",
            "--batch-size", "256", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data_options"] == {"window": 6, "horizon": 1, "split": [0.8, 0.1, 0.1]}  # the command line wins


def test_bad_options_on_the_cli_and_in_the_spec_exit_1_without_traceback(cli, tmp_path):
    r = cli(SKIPGRAM, "--data", "lee", "--data-option", "min_cont=3")
    assert r.exit_code == 1 and "error[E709]: unknown option 'min_cont'" in r.output
    assert "did you mean 'min_count'?" in r.output and "--data-option min_cont" in r.output
    assert "Traceback" not in r.output
    r = cli(SKIPGRAM, "--data", "lee", "--data-option", "min_count=many")
    assert r.exit_code == 1 and "must be an integer; found 'many'" in r.output and "Traceback" not in r.output
    spec = tmp_path / "net.yaml"
    spec.write_text(forecaster_text(tmp_path) + "train:\n  data_options:\n    windw: 10\n")
    r = cli(spec, "--data", "sunspots")
    line = len(FORECASTER.read_text().splitlines()) + 3
    assert r.exit_code == 1 and f"net.yaml:{line}:5: error[E709]: unknown option 'windw'" in r.output
    assert "Traceback" not in r.output
    r = cli(spec, "--data", "sunspots", "--data-option", "nothing")
    assert r.exit_code == 2 and "KEY=VALUE" in r.output


def test_train_help_lists_the_options():
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "--data-option" in r.output
    for entry in datasets().values():
        for option in entry.options:
            assert option in r.output, option


def test_monitor_direction_follows_the_metric():
    from specgraph.train.config import TrainConfig

    assert {m: TrainConfig(monitor=m).monitor_mode for m in ("val_loss", "val_acc", "val_dice", "val_iou",
                                                             "val_analogy", "val_mse", "val_perplexity")} == {
        "val_loss": "min", "val_acc": "max", "val_dice": "max", "val_iou": "max", "val_analogy": "max",
        "val_mse": "min", "val_perplexity": "min"}


def test_every_train_setting_has_an_option():
    """The train command's options are generated from TrainConfig: a new field is a new option."""
    import typer.main

    from specgraph.cli.train import config_options
    from specgraph.train.config import TrainConfig

    command = typer.main.get_command(app).commands["train"]
    flags = {opt for p in command.params for opt in p.opts}
    options = {o.field: o for o in config_options()}
    assert set(options) == set(TrainConfig.model_fields)
    for name, option in options.items():
        assert option.flags[0] in flags, name
    assert options["data_options"].flags == ("--data-option", "-D") and options["out"].flags == ("--out", "-o")
    assert options["progress"].flags == ("--no-progress",) and options["resume"].flags == ("--resume",)
    help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "<sgd|adam|adamw>" in help_text and "<32|bf16-mixed|16-mixed>" in help_text  # Literal fields: choices
