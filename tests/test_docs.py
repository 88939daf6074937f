"""The YAML shown in README.md and docs/language.md is real: it checks and builds."""

from __future__ import annotations

import re

import specgraph
from conftest import ROOT


def yaml_blocks(path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_tour_spec_builds():
    tour = next(b for b in yaml_blocks(ROOT / "README.md") if "graph:" in b)
    graph = specgraph.check(tour)
    assert str(graph.node("fc").out) == "[N, 1000]"
    assert graph.node("layer1.1.conv3").out.shape[1] == 256
    model = specgraph.build(graph)
    assert "layer1.2.downsample.0.weight" not in model.state_dict()
    assert "layer1.0.downsample.0.weight" in model.state_dict()


def test_language_reference_block_example_checks():
    block = next(b for b in yaml_blocks(ROOT / "docs/language.md") if "bottleneck:" in b)
    spec = ("specgraph: 1\ninputs: {image: [N, 64, 56, 56]}\n"
            + block
            + "\ngraph:\n  b1: {block: bottleneck, width: 64}\n  b2: {block: bottleneck, width: 128, stride: 2}\n")
    graph = specgraph.check(spec)
    assert str(graph.node("b1.relu").out) == "[N, 256, 56, 56]"
    assert str(graph.node("b2.relu").out) == "[N, 512, 28, 28]"
    assert "b1.downsample.0" in graph and "b2.downsample.0" in graph


def test_language_reference_examples_marked_from_a_spec_are_that_specs_text():
    """docs/language.md teaches with real specs: a block marked `<!-- from specs/x.yaml -->` is
    a run of lines of that file, as written there, and the spec checks."""
    text = (ROOT / "docs/language.md").read_text(encoding="utf-8")
    quoted = re.findall(r"<!-- from (specs/\S+) -->\n```yaml\n(.*?)```", text, flags=re.S)
    assert len(quoted) >= 4
    for path, block in quoted:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert block in source, f"docs/language.md quotes {path}, which no longer reads:\n{block}"
        if re.search(r"^graph:", source, flags=re.M):
            specgraph.check(ROOT / path)


def test_language_reference_shows_the_requirement_error_as_check_prints_it():
    text = (ROOT / "docs/language.md").read_text(encoding="utf-8")
    shown = re.search(r"```text\n(specs/densenet121\.yaml:.*?)\n```", text, flags=re.S).group(1)
    try:
        specgraph.check(ROOT / "specs/densenet121.yaml", block_config=[6, 12, 24, 16, 8])
    except specgraph.SpecError as e:
        actual = e.diagnostics[0].format().replace(str(ROOT) + "/", "")
    assert actual.startswith(shown), actual
