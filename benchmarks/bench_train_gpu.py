"""Training on a CUDA GPU (issue 15): specs/resnet50 and specs/vit_b_16 against torchvision.

Every row times training steps — forward, cross-entropy, backward, SGD with momentum — of the
spec built by ``specgraph.build`` and of the torchvision model holding the same weights (the
specs carry torchvision's names, so the state_dict loads with strict=True), on synthetic data
already on the GPU, in interleaved rounds.  The ratio is specgraph's images/s over torchvision's
(target >= 0.98 in every row).  Rows: fp32 and bf16 autocast; resnet50 contiguous and
channels_last; torch.compile off and on (compiled rows take a minute each to compile, so by
default only the fastest eager setting of each model is also compiled; ``--all-compiled``
compiles every row).  Then one ``specgraph train`` epoch on CUDA, through the CLI a user runs.

Without CUDA the section says how to measure it.  The whole module is sized to finish in under
5 minutes on one H100 (the device tool's budget):

    .venv/bin/python benchmarks/bench_train_gpu.py                 # print the section (needs CUDA)
    .venv/bin/python benchmarks/bench_train_gpu.py --self-check    # the same code on CPU, tiny sizes
    .venv/bin/python benchmarks/run.py --only train_gpu            # into BENCHMARKS.md
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import specgraph
from timing import Config, Section, fmt_time, interleaved, markdown_table, ratio

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
COMMAND = ".venv/bin/python benchmarks/bench_train_gpu.py"


@dataclass(frozen=True)
class Setting:
    """One row: a model and how its steps run."""

    model: str            # a torchvision classification model that specs/<model>.yaml equals
    batch: int
    bf16: bool            # bf16 autocast (the weights and the optimiser stay fp32)
    channels_last: bool   # images and weights in NHWC
    compiled: bool        # torch.compile of both models (default mode)

    @property
    def label(self) -> str:
        return " ".join([self.model, "bf16 autocast" if self.bf16 else "fp32",
                         "channels_last" if self.channels_last else "contiguous",
                         "compiled" if self.compiled else "eager"])


def settings(all_compiled: bool = False) -> list[Setting]:
    eager = [Setting("resnet50", 128, bf16, cl, False) for bf16 in (False, True) for cl in (False, True)]
    eager += [Setting("vit_b_16", 64, bf16, False, False) for bf16 in (False, True)]
    if all_compiled:
        return eager + [Setting(s.model, s.batch, s.bf16, s.channels_last, True) for s in eager]
    # bf16 + channels_last is how a user trains resnet50 fast; bf16 how one trains a ViT fast
    return eager + [Setting("resnet50", 128, True, True, True), Setting("vit_b_16", 64, True, False, True)]


def model_pair(name: str, device: str, image_size: int | None = None):
    """(spec model, torchvision model) holding the same random weights, on ``device``."""
    import torchvision

    sized = {"image_size": image_size} if image_size and name.startswith("vit") else {}  # ViT's is a param
    torch.manual_seed(0)
    spec_model = specgraph.build(str(SPECS / f"{name}.yaml"), **sized)
    tv = getattr(torchvision.models, name)(**sized)
    tv.load_state_dict(spec_model.state_dict(), strict=True)
    return spec_model.to(device), tv.to(device)


def step_runner(model, x, y, steps: int, bf16: bool, device: str):
    """A callable running ``steps`` SGD steps, and the list its losses go to."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses: list[torch.Tensor] = []
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def run():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        if kind == "cuda":
            torch.cuda.synchronize()

    return run, losses


def throughput(s: Setting, device: str, steps: int, repeats: int, warmup: int, image_size: int = 224,
               cfg: Config | None = None) -> dict:
    """Interleaved samples of both models' training steps under setting ``s``."""
    spec_model, tv = model_pair(s.model, device, image_size if image_size != 224 else None)
    torch.manual_seed(1)
    x = torch.randn(s.batch, 3, image_size, image_size, device=device)
    y = torch.randint(0, 1000, (s.batch,), device=device)
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        spec_model, tv = (m.to(memory_format=torch.channels_last) for m in (spec_model, tv))
    spec_model.train(), tv.train()
    if s.compiled:
        spec_model, tv = torch.compile(spec_model), torch.compile(tv)
    fn_spec, l_spec = step_runner(spec_model, x, y, steps, s.bf16, device)
    fn_tv, l_tv = step_runner(tv, x, y, steps, s.bf16, device)
    samples = interleaved({"specgraph": fn_spec, "torchvision": fn_tv}, repeats=repeats, warmup=warmup,
                          progress=cfg.progress if cfg else None, label=s.label)
    return {"samples": samples, "images": s.batch * steps, "first_loss": (float(l_spec[0]), float(l_tv[0])),
            "finite": all(torch.isfinite(t).item() for t in l_spec + l_tv)}


def train_epoch(accelerator: str = "gpu") -> tuple[str, float, int]:
    """One ``specgraph train`` epoch of lenet5 on Fashion-MNIST: (its epoch line, seconds, exit code)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(Path(sys.executable).with_name("specgraph")), "train", str(SPECS / "lenet5.yaml"), "--data", "fashion-mnist",
               "--accelerator", accelerator, "--devices", "1", "--epochs", "1", "--out", str(Path(out) / "run")]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - t0
    lines = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    epochs = [ln for ln in lines if ln.startswith("epoch ")]  # the per-epoch log line, or what went wrong
    return (epochs or lines or [""])[-1], seconds, done.returncode


def run(cfg: Config | None = None, all_compiled: bool = False) -> list[Section]:
    cfg = cfg or Config()
    title = "Training on a GPU: resnet50 and vit_b_16 against torchvision"
    if not torch.cuda.is_available():
        return [Section(title, "no CUDA GPU on this machine: not measured.\n",
                        [f"To measure it on a machine with a CUDA GPU: `{COMMAND}` (prints this section; "
                         "`.venv/bin/python benchmarks/run.py --only train_gpu` writes it here). "
                         + (__doc__ or "").split("\n\n")[1].replace("\n", " ")])]
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 rows are fp32
    repeats = cfg.repeats(5, minimum=3, quick=1)
    steps = 2 if cfg.quick else 10
    rows = []
    for s in settings(all_compiled):
        r = throughput(s, "cuda", steps, repeats, 1 if cfg.quick else 2, cfg=cfg)
        sm = r["samples"]
        ips = {k: r["images"] / v.median for k, v in sm.items()}
        spread = [r["images"] / t for t in sm["specgraph"].times]
        rows.append([s.label, f"{ips['specgraph']:,.0f}", f"{ips['torchvision']:,.0f}",
                     f"**{1 / ratio(sm['specgraph'], sm['torchvision']):.3f}**",
                     f"{min(spread):,.0f}–{max(spread):,.0f}", "yes" if r["finite"] else "**no**"])
    table = markdown_table(["setting", "specgraph images/s", "torchvision images/s",
                            "throughput ratio (spec / tv, target ≥ 0.98)", "specgraph spread", "finite losses"],
                           rows, align="lrrrrl")
    line, seconds, code = train_epoch()
    notes = [f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}; {steps} training steps per sample, "
             f"medians of {repeats} interleaved samples, `cudnn.benchmark` on, TF32 off. resnet50 at batch 128, "
             "vit_b_16 at batch 64, synthetic 224×224 images on the GPU; both models hold the same weights.",
             f"`specgraph train specs/lenet5.yaml --data fashion-mnist --accelerator gpu --epochs 1`: exit code {code}, "
             f"{seconds:.1f} s wall (process start and data loading included); its epoch line: `{line}`."]
    return [Section(title, table, notes)]


def self_check() -> None:
    """Every row's code path on the CPU at tiny sizes: the same weights give the same first loss."""
    for s in settings(all_compiled=False):
        if s.compiled:
            continue  # compiling two ResNet-50s on a 2-core CPU takes minutes; the eager path is the same code
        small = Setting(s.model, 2, s.bf16, s.channels_last, False)
        r = throughput(small, "cpu", 1, 1, 0, image_size=224 if s.model == "resnet50" else 32)  # resnet50.yaml declares 224
        a, b = r["first_loss"]
        assert r["finite"], r
        assert abs(a - b) <= (5e-2 if s.bf16 else 1e-4) * max(1.0, abs(b)), (small.label, a, b)
        print(f"ok {small.label}: first loss specgraph {a:.5f}, torchvision {b:.5f}")
    line, seconds, code = train_epoch("cpu")  # the CLI command the GPU row runs, on the CPU
    assert code == 0, line
    print(f"ok specgraph train, one epoch on the CPU in {seconds:.0f} s: {line}")
    print("without CUDA:", run(Config())[0].table.strip())


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--self-check" in args:
        self_check()
        sys.exit(0)
    for section in run(Config(quick="--quick" in args), all_compiled="--all-compiled" in args):
        print(section.markdown())
