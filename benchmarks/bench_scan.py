"""Gate-level cells scanned (`scan:` over the cells of specs/cells) against torch's layers.

CPU, T=64, B=32, H=256 (input features 256), forward + backward of sum(out), medians of
interleaved repeats, with the spread of the per-round ratio (q1 – q3). Targets:

* matched cells (lstm_cell, gru_cell: fused into torch's kernel, ops/cell_match.py), eager:
  <= 1.05 x nn.LSTM / nn.GRU eager;
* an unmatched cell (layernorm_lstm_cell: the loop) under torch.compile: <= 1.5 x
  torch.compile(nn.LSTM);
* the loop of lstm_cell (fusion off), eager: <= 3 x nn.LSTM (the target before fusion).

Also shown, without a target: the loop without hoisting the input projection (what that
rewrite buys), and the fused lstm_cell under torch.compile (oneDNN's kernel as one custom op in
the compiled graph, ops/lstm_kernel_op.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import specgraph
from specgraph.torch.build import build_module
from specgraph.torch.weights import from_torch
from timing import Config, Section, fmt_time, interleaved, markdown_table, paired_ratios, quartiles, ratio

ROOT = Path(__file__).resolve().parent.parent
T, B, H = 64, 32, 256
FUSED_TARGET, COMPILED_TARGET, LOOP_TARGET = 1.05, 1.5, 3.0


def scan_graph(cell: str):
    text = f"""
specgraph: 1
include: ["{ROOT / f'specs/cells/{cell}.yaml'}"]
inputs: {{x: [N, T, {H}]}}
graph:
  rnn: {{scan: {cell}, hidden: {H}}}
outputs: [rnn.out]
"""
    return specgraph.check(specgraph.load(text, include_root=str(ROOT)))


def scan_model(cell: str, fused: bool = True, hoist: bool = True) -> torch.nn.Module:
    graph = scan_graph(cell)
    model = specgraph.build(graph)
    scan = model.rnn
    if hasattr(scan, "fused"):
        scan.fused = fused
    if not hoist:  # the whole cell per step: its graph as the compiler made it, before the hoisting split
        scan.cell.__dict__["hoisted"] = False
        scan.cell.__dict__["step"] = build_module(graph.node("rnn").params.cell, modules=scan.cell)
    return model


def run(cfg: Config | None = None) -> list[Section]:
    cfg = cfg or Config()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    lstm, gru = torch.nn.LSTM(H, H, batch_first=True), torch.nn.GRU(H, H, batch_first=True)
    models = {"scan(lstm_cell) fused": scan_model("lstm_cell"), "torch.nn.LSTM": lstm,
              "scan(gru_cell) fused": scan_model("gru_cell"), "torch.nn.GRU": gru,
              "scan(lstm_cell) loop": scan_model("lstm_cell", fused=False),
              "scan(lstm_cell) loop, no hoisting": scan_model("lstm_cell", fused=False, hoist=False)}
    for name, model in models.items():
        if name.startswith("scan("):
            model.load_state_dict(from_torch((gru if "gru" in name else lstm).state_dict(), "rnn.cell.", layer=0),
                                  strict=True)
    x = torch.randn(B, T, H)

    def step(m):
        def f():
            out = m(x)
            out = out[0] if isinstance(out, tuple) else out
            out.sum().backward()
        return f

    def zero(name, table=models):
        for p in table[name].parameters():
            p.grad = None

    def row(what, samples, cand, ref, target=None):
        r = ratio(samples[cand], samples[ref])
        q1, _, q3 = quartiles(paired_ratios(samples[cand], samples[ref]))
        verdict = "" if target is None else f"≤ {target:g} " + ("met" if r <= target else "**missed**")
        return [what, fmt_time(samples[cand].median), fmt_time(samples[ref].median), f"**{r:.2f}**",
                f"{q1:.2f} – {q3:.2f}", verdict]

    repeats = cfg.repeats(9, minimum=7, quick=1)
    cfg.progress(f"scans vs torch's layers, eager: {repeats} rounds")
    eager = interleaved({k: step(m) for k, m in models.items()}, repeats=repeats, warmup=2,
                        before_each=zero, progress=cfg.progress, label="eager")
    rows = [row("scan(lstm_cell), fused, eager vs nn.LSTM", eager, "scan(lstm_cell) fused", "torch.nn.LSTM",
                FUSED_TARGET),
            row("scan(gru_cell), fused, eager vs nn.GRU", eager, "scan(gru_cell) fused", "torch.nn.GRU", FUSED_TARGET),
            row("scan(lstm_cell), loop (fusion off), eager vs nn.LSTM", eager, "scan(lstm_cell) loop",
                "torch.nn.LSTM", LOOP_TARGET),
            row("scan(lstm_cell), loop without hoisting, eager vs nn.LSTM", eager,
                "scan(lstm_cell) loop, no hoisting", "torch.nn.LSTM")]
    notes = []
    try:
        torch._dynamo.reset()
        layernorm = scan_model("layernorm_lstm_cell")
        compiled = {"scan(layernorm_lstm_cell)": torch.compile(layernorm), "torch.nn.LSTM": torch.compile(lstm),
                    "scan(lstm_cell) fused": torch.compile(models["scan(lstm_cell) fused"])}
        plain = {"scan(layernorm_lstm_cell)": layernorm, "torch.nn.LSTM": lstm,
                 "scan(lstm_cell) fused": models["scan(lstm_cell) fused"]}
        cfg.progress("compiling (inductor) …")
        for m in compiled.values():
            step(m)()
        comp = interleaved({k: step(m) for k, m in compiled.items()}, repeats=repeats, warmup=1,
                           before_each=lambda name: zero(name, plain), progress=cfg.progress, label="compiled")
        rows.append(row("scan(layernorm_lstm_cell), torch.compile vs torch.compile(nn.LSTM)", comp,
                        "scan(layernorm_lstm_cell)", "torch.nn.LSTM", COMPILED_TARGET))
        rows.append(row("scan(lstm_cell), fused, torch.compile vs torch.compile(nn.LSTM)", comp,
                        "scan(lstm_cell) fused", "torch.nn.LSTM"))
    except Exception as e:  # report, do not hide: compile support varies by platform
        notes.append(f"torch.compile run failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    table = markdown_table(["what", "scan", "reference", "ratio", "per-round ratio q1 – q3", "target"], rows,
                           align="lrrrrl")
    notes.insert(0, f"Forward + backward of sum(out) over a [{B}, {T}, {H}] batch, hidden {H}, one layer, CPU with 2 "
                    "threads, every candidate of a table timed in the same interleaved rounds. lstm_cell and gru_cell "
                    "are exactly torch's LSTM and GRU steps, so their scans are fused: torch's kernel (torch.lstm, "
                    "torch.gru, what nn.LSTM and nn.GRU call) runs the whole sequence with the cell's parameters as "
                    "its weights. The loop runs the cell's fx graph once per step from Python, after computing the "
                    "input projection x2h for all 64 steps in one matrix multiply (hoisting). layernorm_lstm_cell "
                    "has no torch kernel: under torch.compile, Dynamo captures its loop whole (no graph break) and "
                    "unrolls it over the 64 steps. Dynamo does not capture nn.LSTM itself (torch's `allow_rnn` is "
                    "off), so torch.compile(nn.LSTM) runs torch's eager kernel; the fused scan under torch.compile "
                    "runs the same oneDNN kernel, as one custom op inside the captured graph "
                    "(ops/lstm_kernel_op.py).")
    notes.append("The compiled layernorm_lstm_cell row is the most load-sensitive here: its unrolled 64 steps run "
                 "thousands of small parallel regions (inductor's fused kernels, each with several OpenMP "
                 "sections, and the per-step matrix products), forward and backward, against nn.LSTM's few "
                 "large ones, so when the virtual machine's host is busy it slows more than its reference. "
                 "On 2026-12-07, with nothing else running in the machine, runs of this module gave 1.38 "
                 "(27 rounds) and 1.55, 1.62 and 1.67 at busier times; the same compiled module took 48 ms "
                 "in one process and 57-70 ms in others minutes later, while compiled nn.LSTM stayed at "
                 "35-37 ms. At one thread it is ~1.24x (no parallel regions to wait at). At noon the same "
                 "day the host was busier (nothing else ran in this machine; compiled nn.LSTM itself took "
                 "41-43 ms, and the fused GRU, torch's own kernel on both sides, read 1.06 in one run): "
                 "two runs gave 1.84 and 1.66; the morning's quiet runs gave 1.41 and 1.38.")
    return [Section("Recurrence: scanned gate-level cells vs torch.nn.LSTM / GRU", table, notes)]


if __name__ == "__main__":
    for section in run(Config(quick="--quick" in sys.argv[1:])):
        print(section.markdown())
