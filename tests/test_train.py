"""specgraph train: Lightning runs on CPU — accuracy, early stopping, resume, freeze, DDP,
partial loading, settings precedence, and the errors a user can make."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

import lightning as L  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import specgraph  # noqa: E402
from conftest import ROOT, SPECS  # noqa: E402
from specgraph.cli.app import app  # noqa: E402
from specgraph.diagnostics import SpecError  # noqa: E402
from specgraph.train import TrainConfig, load_dataset, resolve_config  # noqa: E402
from specgraph.train.runner import train  # noqa: E402
from specgraph.train.transfer import load_partial  # noqa: E402

LENET = SPECS / "lenet5.yaml"
QUICK = dict(batch_size=32, progress=False, threads=1)  # one thread: fastest for small nets on a busy machine

# A small conv net with batch norm in a block, for freezing.
BN_NET = """
specgraph: 1
name: bn_net
params: {num_classes: 10}
inputs:
  image: [N, 1, 8, 8]
blocks:
  conv_bn:
    params: {out: int}
    nodes:
      conv: {op: conv2d, out: $out, kernel: 3, padding: 1, bias: false}
      bn:   {op: batchnorm2d}
      act:  {op: relu}
graph:
  c1: {block: conv_bn, out: 8}
  c2: {block: conv_bn, out: 8}
  pool: {op: adaptive_avgpool2d, size: 1}
  flatten: {op: flatten}
  fc: {op: linear, out: $num_classes}
"""


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lenet5_on_digits_reaches_95_percent(tmp_path):
    r = train(LENET, "digits", epochs=6, lr=3e-3, out=str(tmp_path / "run"), **QUICK)
    assert r.test["acc"] >= 0.95, r.test
    assert r.epochs == 6 and 1 <= r.best_epoch <= 6
    for name in ("config.yaml", "metrics.csv", "curves.png", "model.pt", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (tmp_path / "run" / name).is_file(), name
    assert [row["epoch"] for row in r.history] == [1, 2, 3, 4, 5, 6]
    assert {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(r.history[-1])
    rebuilt = specgraph.build(LENET)
    rebuilt.load_state_dict(torch.load(tmp_path / "run" / "model.pt", weights_only=True), strict=True)  # spec names


class CraftedCurve(L.Callback):
    """Logs a made-up validation score per epoch and keeps a copy of the weights it scored."""

    def __init__(self, curve):
        self.curve, self.snapshots = curve, []

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_crafted", self.curve[trainer.current_epoch])
        self.snapshots.append(state(pl_module.model))


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best(tmp_path):
    curve = [1.0, 0.5, 0.6, 0.7, 0.4, 0.3]  # best at epoch 2; patience 2 -> stop after epoch 4
    crafted = CraftedCurve(curve)
    r = train(LENET, "digits", epochs=6, early_stop=2, monitor="val_crafted", limit_train_batches=3,
              out=str(tmp_path / "run"), callbacks=[crafted], **QUICK)
    assert r.epochs == 4 and r.stopped_early
    assert r.best_epoch == 2
    best, final = crafted.snapshots[1], state(r.model)
    assert all(torch.equal(best[k], final[k]) for k in best)
    assert not all(torch.equal(crafted.snapshots[3][k], final[k]) for k in best)


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    settings = dict(limit_train_batches=6, limit_val_batches=2, augment=["flip", "rotation:10"], seed=3, **QUICK)
    whole = train(LENET, "digits", epochs=3, out=str(tmp_path / "whole"), **settings)
    train(LENET, "digits", epochs=1, out=str(tmp_path / "split"), **settings)
    resumed = train(LENET, "digits", epochs=3, resume=True, out=str(tmp_path / "split"), **settings)
    assert resumed.epochs == 3
    a = torch.load(whole.last_checkpoint, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_loss"] for r in whole.history] == pytest.approx([r["val_loss"] for r in resumed.history], abs=1e-6)
    assert len(resumed.history) == 3
    other = tmp_path / "other.yaml"
    other.write_text("specgraph: 1\ninputs: {image: [N, 1, 28, 28]}\ngraph:\n  flatten: {op: flatten}\n"
                     "  out: {op: linear, out: 10}\n")
    with pytest.raises(SpecError) as e:  # another model's checkpoint
        train(other, "digits", epochs=4, resume=True, out=str(tmp_path / "split"), **settings)
    assert e.value.codes == ["E708"] and "out.weight: [10, 784] here, [10, 84] in the checkpoint" in str(e.value)


def test_freeze_keeps_weights_and_batchnorm_statistics(tmp_path):
    spec = tmp_path / "bn_net.yaml"
    spec.write_text(BN_NET)
    torch.manual_seed(1)
    initial = state(specgraph.build(spec))
    torch.save(initial, tmp_path / "init.pt")
    r = train(spec, "digits", epochs=1, freeze=["c1.*"], init_from=str(tmp_path / "init.pt"), limit_train_batches=5,
              out=str(tmp_path / "run"), **QUICK)
    assert r.load_report and len(r.load_report.loaded) == len(initial)
    assert "c1.bn" in r.frozen.eval_modules
    after = state(r.model)
    for k in ("c1.conv.weight", "c1.bn.weight", "c1.bn.bias", "c1.bn.running_mean", "c1.bn.running_var",
              "c1.bn.num_batches_tracked"):
        assert torch.equal(after[k], initial[k]), k
    assert not torch.equal(after["c2.conv.weight"], initial["c2.conv.weight"])
    assert not torch.equal(after["c2.bn.running_mean"], initial["c2.bn.running_mean"])


def test_init_from_loads_by_name_and_reports_what_it_skipped(tmp_path, capsys):
    model = specgraph.build(LENET)
    source = state(specgraph.build(LENET))
    del source["out.bias"]
    source["f5.weight"] = torch.zeros(3, 3)
    source["extra.weight"] = torch.zeros(2)
    torch.save(source, tmp_path / "w.pt")
    report = load_partial(model, tmp_path / "w.pt")
    assert report.missing == ["out.bias"]
    assert report.mismatched == [("f5.weight", (120, 400), (3, 3))]
    assert report.unused == ["extra.weight"]
    assert "c1.conv.weight" in report.loaded and torch.equal(model.state_dict()["c1.conv.weight"], source["c1.conv.weight"])
    text = report.format()
    assert "loaded 8 tensors" in text and "missing from the file): out.bias" in text
    assert "shape mismatch, model vs file): f5.weight [120, 400] vs [3, 3]" in text
    # a Lightning checkpoint of a run loads too (its names carry the module's `model.` prefix)
    r = train(LENET, "digits", epochs=1, limit_train_batches=2, out=str(tmp_path / "run"), **QUICK)
    again = load_partial(specgraph.build(LENET), r.last_checkpoint)
    assert not again.missing and not again.mismatched and len(again.loaded) == 10


DDP_SCRIPT = """
import os, sys, torch
import lightning as L
from specgraph.train.runner import train

class Save(L.Callback):
    def on_train_end(self, trainer, pl_module):
        torch.save(pl_module.model.state_dict(), os.path.join(sys.argv[2], f"rank{trainer.global_rank}.pt"))

train(sys.argv[1], "digits", epochs=1, batch_size=32, limit_train_batches=6, strategy="ddp", devices=2,
      accelerator="cpu", progress=False, out=sys.argv[2], callbacks=[Save()])
"""


def test_ddp_with_two_cpu_processes_ends_with_equal_weights(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(b"an earlier run")  # so this run goes to run-2, in every process
    done = subprocess.run([sys.executable, str(script), str(LENET), str(tmp_path / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "run" / "model.pt").read_bytes() == b"an earlier run"
    assert (tmp_path / "run-2" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "run-3").exists()
    w0 = torch.load(tmp_path / "run" / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "run" / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    torch.manual_seed(0)
    assert not torch.equal(w0["c1.conv.weight"], specgraph.build(LENET).state_dict()["c1.conv.weight"])


def test_settings_precedence_spec_then_file_then_command_line(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(LENET.read_text() + "train: {epochs: 3, lr: 0.1, batch_size: 16, data: digits}\n")
    (tmp_path / "settings.yaml").write_text("lr: 0.01\nbatch_size: 8\n")
    loaded = specgraph.load(spec)
    c = resolve_config(loaded.doc.train, loaded.source, tmp_path / "settings.yaml", {"batch_size": 4, "lr": None})
    assert (c.epochs, c.lr, c.batch_size, c.data) == (3, 0.01, 4, "digits")
    assert resolve_config(None, None, None, {}) == TrainConfig()
    assert TrainConfig(precision=32).precision == "32"


def test_a_misspelt_setting_is_located_in_the_spec_and_in_the_file(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(LENET.read_text() + "train:\n  epochs: 3\n  ealy_stop: 2\n")
    loaded = specgraph.load(spec)
    with pytest.raises(SpecError) as e:
        resolve_config(loaded.doc.train, loaded.source)
    (d,) = e.value.diagnostics
    n_lines = len(LENET.read_text().splitlines())
    assert d.code == "E201" and d.location.line == n_lines + 3 and "did you mean 'early_stop'" in d.hint
    (tmp_path / "s.yaml").write_text("optimizer: adamm\nepochs: two\n")
    with pytest.raises(SpecError) as e:
        resolve_config(None, None, tmp_path / "s.yaml")
    assert e.value.codes == ["E203", "E203"]
    assert [d.location.line for d in e.value.diagnostics] == [1, 2]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["train", *map(str, args), "--no-progress"])


def test_bad_dataset_name_is_a_clear_error(cli):
    r = cli(LENET, "--data", "fashion-mnsit")
    assert r.exit_code == 1 and "error[E701]" in r.output and "did you mean 'fashion-mnist'" in r.output
    assert "Traceback" not in r.output


def test_missing_files_are_clear_errors(cli, tmp_path):
    r = cli(LENET, "--data", f"fashion-mnist:{tmp_path / 'nowhere'}")
    assert r.exit_code == 1 and "error[E702]" in r.output and "folder not found" in r.output
    r = cli(tmp_path / "missing.yaml", "--data", "digits")
    assert r.exit_code == 1 and "error[E108]" in r.output and "file not found" in r.output
    r = cli(LENET, "--data", "digits", "--init-from", tmp_path / "nothing.pt")
    assert r.exit_code == 1 and "error[E706]" in r.output
    r = cli(LENET, "--data", "digits", "--resume", "--out", tmp_path / "fresh")
    assert r.exit_code == 1 and "error[E708]" in r.output
    assert "Traceback" not in r.output


def test_an_output_that_does_not_fit_the_task_is_a_clear_error(cli, tmp_path):
    seven = tmp_path / "seven.yaml"
    seven.write_text(LENET.read_text().replace("out: {op: linear, out: $num_classes}", "out: {op: linear, out: 7}"))
    r = cli(seven, "--data", "digits")
    assert r.exit_code == 1, r.output
    assert "error[E703] node 'out'" in r.output and "10 classes" in r.output and "[N, 7]" in r.output
    assert f"seven.yaml:{LENET.read_text().splitlines().index('  out: {op: linear, out: $num_classes}') + 1}:" in r.output
    r = cli(LENET, "--data", "digits", "--set", "num_classes=7")  # the user's own choice is kept, and refused
    assert r.exit_code == 1 and "error[E703]" in r.output and "drop --set num_classes=7" in r.output
    unflat = tmp_path / "unflat.yaml"
    unflat.write_text("specgraph: 1\ninputs: {image: [N, 1, 28, 28]}\ngraph:\n  conv: {op: conv2d, out: 10, kernel: 3}\n")
    r = cli(unflat, "--data", "digits")
    assert r.exit_code == 1 and "error[E703]" in r.output and "rank 4" in r.output
    r = cli(SPECS / "char_lstm.yaml", "--data", "digits")
    assert r.exit_code == 1 and "error[E704]" in r.output  # the inputs do not fit either
    assert "Traceback" not in r.output


def test_unknown_settings_on_the_command_line_are_refused(cli):
    r = cli(LENET, "--data", "digits", "--optimizer", "adamm")
    assert r.exit_code == 1 and "error[E203]" in r.output and "optimizer" in r.output
    r = cli(LENET, "--data", "digits", "--augment", "flop")
    assert r.exit_code == 1 and "error[E204]" in r.output and "did you mean 'flip'" in r.output


def test_fashion_mnist_reads_idx_files(tmp_path):
    """A folder of (gzipped) IDX files is read like the Debian package's; the splits are fixed."""
    import gzip

    rng = torch.Generator().manual_seed(0)
    for split, n in (("train", 50), ("t10k", 20)):
        images = torch.randint(0, 256, (n, 28, 28), generator=rng, dtype=torch.uint8)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.numpy().tobytes()))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big")
                                                             + labels.numpy().tobytes())
    b = load_dataset(f"fashion-mnist:{tmp_path}", specgraph.check(LENET).inputs)
    assert (len(b.train), len(b.val), len(b.test)) == (45, 5, 20) and b.num_classes == 10
    assert b.train[0][0].shape == (1, 28, 28) and b.test[3][1] == 3


AUX_NET = """
specgraph: 1
inputs: {x: [N, 4]}
graph:
  fc:  {op: linear, out: 3}
  aux: {op: linear, out: 3, from: x}
outputs:
  logits: fc
  aux: {from: aux, train_only: true}
"""


def test_auxiliary_outputs_add_0_3_of_their_loss_in_training_only():
    from specgraph.train.module import SpecModule, plan_outputs
    from specgraph.train.tasks import make_task

    graph = specgraph.check(AUX_NET)
    plan = plan_outputs(graph)
    assert (plan.main_train, plan.aux_train, plan.logits_train) == (0, [1], None)
    model = specgraph.build(graph)
    module = SpecModule(model, make_task("classification", 3), plan, TrainConfig())
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    model.train()
    main, aux = model(x)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(module._step((x, y), "train"), ce(main, y) + 0.3 * ce(aux, y))
    model.eval()
    assert torch.allclose(module._step((x, y), "val"), ce(model(x), y))
    assert module.state_dict().keys() == {f"model.{k}" for k in model.state_dict()}  # metrics hold no weights
    googlenet = plan_outputs(specgraph.check(SPECS / "googlenet.yaml", aux_logits=True))
    assert (googlenet.main_train, googlenet.aux_train) == (0, [1, 2])


def test_a_softmax_output_trains_on_its_training_only_logits():
    from specgraph.train.module import plan_outputs

    plan = plan_outputs(specgraph.check(SPECS / "skipgram.yaml"))
    assert (plan.main_train, plan.logits_train, plan.aux_train, plan.eval_kind) == (0, 1, [], "probs")


def epoch_metrics(task, *batches):
    """The task's metrics over ``batches`` of (pred, target[, loss]), as a stage's epoch computes them."""
    metrics = task.make_metrics()
    for pred, target, *loss in batches:
        task.update(metrics, pred, target, loss[0] if loss else task.loss(pred, target))
    return task.compute(metrics)


def test_task_metrics_are_exact_over_the_summed_batches():
    from specgraph.train.tasks import make_task, negative_sampling_loss

    seg = make_task("segmentation", num_classes=2)
    target = torch.tensor([[[0, 1], [1, 1]]])
    pred = torch.tensor([[[[5.0, -5.0], [5.0, -5.0]], [[-5.0, 5.0], [-5.0, 5.0]]]])  # predicts [[0, 1], [0, 1]]
    m = epoch_metrics(seg, (pred, target))
    assert m["dice"] == pytest.approx(2 * 2 / (2 + 3)) and m["iou"] == pytest.approx(2 / 3)
    # over batches, per foreground class present (class 3 is neither predicted nor labelled), as counted by hand
    seg4, g = make_task("segmentation", num_classes=4), torch.Generator().manual_seed(1)
    batches = [(torch.randn(2, 4, 5, 5, generator=g) - torch.tensor([0, 0, 0, 99.0]).view(1, 4, 1, 1),
                torch.randint(0, 3, (2, 5, 5), generator=g)) for _ in range(3)]
    hard, true = torch.cat([p.argmax(1) for p, _ in batches]), torch.cat([t for _, t in batches])
    inter, npred, ntrue = ((torch.bincount(x.flatten(), minlength=4)[1:3]).float()
                           for x in (true[hard == true], hard, true))
    m = epoch_metrics(seg4, *batches)
    assert m["dice"] == pytest.approx(float((2 * inter / (npred + ntrue)).mean()))
    assert m["iou"] == pytest.approx(float((inter / (npred + ntrue - inter)).mean()))
    nothing = epoch_metrics(seg, (torch.tensor([[[[9.0]], [[0.0]]]]), torch.zeros(1, 1, 1, dtype=torch.long)))
    assert (nothing["dice"], nothing["iou"]) == (0.0, 0.0)  # no foreground anywhere
    lm = make_task("language_model", vocab=4)
    logits, tokens = torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)
    assert epoch_metrics(lm, (logits, tokens))["ppl"] == pytest.approx(4.0)
    reg = make_task("regression")
    r = epoch_metrics(reg, (torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]), torch.tensor(5.0)))
    assert (r["mse"], r["mae"]) == (5.0, 2.0)
    # over batches of different sizes: sums first, then one division (not a mean of batch means)
    clf = make_task("classification", num_classes=3)
    right, wrong = torch.eye(3), torch.eye(3)[[1]]
    m = epoch_metrics(clf, (right, torch.arange(3), torch.tensor(1.0)), (wrong, torch.tensor([0]), torch.tensor(5.0)))
    assert list(m) == ["loss", "acc"] and m["acc"] == pytest.approx(3 / 4) and m["loss"] == pytest.approx(8 / 4)
    assert list(epoch_metrics(reg, (torch.ones(2, 1), torch.zeros(2, 1)))) == ["loss", "mse", "mae"]
    assert list(epoch_metrics(lm, (logits, tokens))) == ["loss", "ppl", "acc"]
    scores = torch.tensor([[2.0, -1.0, 0.5]])
    expected = -(torch.nn.functional.logsigmoid(torch.tensor(2.0)) + torch.nn.functional.logsigmoid(torch.tensor([1.0, -0.5])).sum())
    assert negative_sampling_loss(scores) == pytest.approx(float(expected))


def test_a_train_section_is_in_the_editor_schema():
    import jsonschema
    import yaml

    from specgraph.api import language_schema

    schema = language_schema()
    doc = yaml.safe_load(LENET.read_text() + "train: {data: digits, epochs: 3, precision: 32, augment: [flip, {rotation: 10}]}\n")
    jsonschema.validate(doc, schema)
    doc["train"]["ealy_stop"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_imagefolder_images_are_fitted_to_the_spec_and_set_its_classes(tmp_path):
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for label, name in enumerate(("cats", "dogs")):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(10):
            pixels = (torch.rand(20, 24, 3, generator=rng) * 100 + 120 * label).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
    r = train(LENET, f"imagefolder:{tmp_path / 'pets'}", epochs=1, augment=["flip", "crop:2", "brightness"],
              out=str(tmp_path / "run"), **QUICK)
    assert r.data.num_classes == 2 and r.data.meta["classes"] == ["cats", "dogs"]
    assert (len(r.data.train), len(r.data.val), len(r.data.test)) == (16, 2, 2)
    assert r.data.train[0][0].shape == (1, 28, 28)
    assert r.model.state_dict()["out.weight"].shape == (2, 84)  # num_classes from the data


def test_segmentation_masks_follow_the_image_through_augmentation():
    from torch.utils.data import TensorDataset

    from specgraph.train.augment import augment_dataset

    image = torch.zeros(8, 1, 6, 6)
    image[:, :, :, :3] = 1.0  # left half bright
    masks = (image[:, 0] > 0.5).long()  # the mask marks the bright half
    aug = augment_dataset(TensorDataset(image, masks), ["flip", "rotation:90"], "segmentation", {})
    torch.manual_seed(0)
    for i in range(8):
        x, y = aug[i]
        assert torch.equal((x[0] > 0.5).long(), y) and y.dtype == torch.long
