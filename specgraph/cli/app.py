"""What every command shares: the typer app, the consoles, error handling, the shared options.

Each command is a module of this package that registers itself on ``app`` when imported;
``specgraph/cli/__init__.py`` imports them all, so ``from specgraph.cli.app import app`` (which
imports the package first) has every command.

Exit codes: 0 success, 1 the spec has errors (printed compiler-style), 2 usage error.
A Python traceback reaching the user is a bug: unexpected exceptions are reported as an
internal error with a request to file it, and exit 3.

The SPEC argument of every command is a file path, whatever its suffix; it is YAML text only
when asked: ``-`` reads the text from stdin, ``--text`` takes the argument itself as the text.
A folder or a FIFO named as SPEC is an E108 error, never read (see :func:`spec_source`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Literal, Optional, get_args

import typer
from rich.console import Console
from rich.table import Table

from ..diagnostics import Diagnostic, Location, SpecError
from ..lang.limits import DEFAULT_LIMITS, Limits
from ..lang.spec import YamlText

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SetOpt = typer.Option(None, "--set", "-s", help="override a spec param: KEY=VALUE (VALUE read as YAML)")
LimitOpt = typer.Option(None, "--limit", help="raise a resource limit: NAME=VALUE (see docs/errors.md)")
IncludeRootOpt = typer.Option(None, "--include-root", help="folder that includes may reach (default: the spec's folder)")
SpecArg = typer.Argument(..., metavar="SPEC", help="the spec file (any suffix); '-' reads the YAML from stdin")
TextOpt = typer.Option(False, "--text", help="SPEC is the YAML text itself, not a file path")

OutputFormat = Literal["text", "json"]
Optimize = Literal["inference"]
Backend = Literal["torch", "onnxruntime"]


# ---------------------------------------------------------------- KEY=VALUE options

def yaml_value(raw: str) -> Any:
    """An option's VALUE read as YAML (safely): 10, 0.5, true, [1, 2]; text YAML cannot read stays text."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def key_values(items: Optional[List[str]], option: str, value: Callable[[str], Any] = yaml_value, *,
               form: str = "KEY=VALUE", key: Callable[[str], bool] = bool) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` items of ``option`` as {key: value(VALUE)}, the one parser of them all.

    ``key`` says whether a (stripped) KEY is acceptable and ``value`` reads VALUE, raising
    ValueError when it cannot; either failing is a usage error "expected FORM, found 'ITEM'".
    """
    pairs: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not key(name.strip()):
                raise ValueError(item)
            pairs[name.strip()] = value(raw)
        except ValueError as e:
            raise typer.BadParameter(f"expected {form}, found {item!r}", param_hint=option) from e
    return pairs


def overrides(items: Optional[List[str]]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as spec params."""
    return key_values(items, "--set")


def limits(items: Optional[List[str]]) -> Limits:
    """``--limit NAME=INTEGER`` options applied to the default resource limits."""
    changes = key_values(items, "--limit", int, form="NAME=INTEGER", key=lambda name: True)
    try:
        return DEFAULT_LIMITS.with_overrides(**changes)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--limit") from e


def dims(items: Optional[List[str]], minimum: int) -> dict[str, int]:
    """``--dim NAME=INT`` options as {name: size}, each size at least ``minimum``."""

    def size(raw: str) -> int:
        if not (raw.strip().isascii() and raw.strip().isdigit()) or int(raw) < minimum:
            raise ValueError(raw)
        return int(raw)

    return key_values(items, "--dim", size, form=f"NAME=INTEGER of at least {minimum}", key=str.isidentifier)


def known_dims(sizes: dict[str, int], graph) -> dict[str, int]:
    """``sizes`` when each names a symbolic dim of the spec's inputs: a misspelt --dim would size
    nothing and be silently ignored."""
    unknown = sorted(set(sizes) - set(graph.input_symbols))
    if unknown:
        raise typer.BadParameter(f"the spec has no symbolic dim {', '.join(unknown)}; its inputs' dims are "
                                 f"{', '.join(graph.input_symbols) or 'all concrete'}", param_hint="--dim")
    return sizes


# ---------------------------------------------------------------- choices

def one_of(kind: Any, option: str, message: str, *, case_sensitive: bool = True) -> Callable[[str], str]:
    """A typer ``parser`` for an option annotated ``kind`` (a Literal): the help shows its values,
    and a value outside them is a usage error ``message`` (formatted with ``found``: the value)."""
    values = get_args(kind)

    def parse(value: str) -> str:
        for v in values:
            if value == v or not case_sensitive and value.upper() == v.upper():
                return v
        raise typer.BadParameter(message.format(found=value), param_hint=option)

    return parse


# ---------------------------------------------------------------- running a command

def error_count(n: int) -> str:
    return f"{n} error{'s' if n != 1 else ''}"


def guarded(action: Callable[[], Any], json_errors: bool = False,
            report: Optional[Callable[[SpecError], None]] = None) -> Any:
    """Run a command body, turning SpecError into exit code 1 and any other exception into 3.

    A SpecError is printed (as JSON with ``json_errors``), or handed to ``report`` when given."""
    try:
        return action()
    except SpecError as e:
        if report is not None:
            report(e)
        elif json_errors:
            print(json.dumps({"ok": False, "diagnostics": [d.to_json() for d in e.diagnostics]}, indent=2))
        else:
            err.print(e.format(), markup=False)
            err.print(error_count(len(e.errors)), markup=False)
        raise typer.Exit(1)
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except RecursionError:
        err.print("error[E605]: the spec nests too deeply to process", markup=False)
        raise typer.Exit(1)
    except MemoryError:
        err.print("error[E605]: the spec needs more memory than is available", markup=False)
        raise typer.Exit(1)
    except Exception as e:  # a bug in specgraph, not in the spec
        err.print(f"internal error: {type(e).__name__}: {e}\nplease report this with the spec that caused it",
                  markup=False)
        raise typer.Exit(3)


STDIN = "<stdin>"


def spec_source(spec: str | Path, text: bool = False, limit=None) -> Path | YamlText:
    """What a command's SPEC argument names: a file path, unless ``--text`` (the argument is the
    YAML) or ``-`` (the YAML is read from stdin, at most the max_file_bytes limit: E104 beyond)."""
    if text:
        return YamlText(str(spec), "<text>")
    if str(spec) != "-":
        if "\n" in str(spec) and not Path(spec).exists():  # text where a path belongs: say how to pass text
            first = str(spec).strip().splitlines()[0][:60] if str(spec).strip() else ""
            raise SpecError(Diagnostic("E108", "file not found; SPEC is a file path, and this looks like YAML text",
                                       Location(first, 1, 1), hint="pass the text with --text, or '-' to read stdin"))
        return Path(spec)
    most = limits(limit).max_file_bytes
    data = sys.stdin.buffer.read(most + 1)
    if len(data) > most:
        raise SpecError(Diagnostic("E104", f"stdin holds more than {most} bytes", Location(STDIN, 1, 1),
                                   hint="raise it with --limit max_file_bytes=N"))
    try:
        return YamlText(data.decode("utf-8").removeprefix("\ufeff"), STDIN)
    except UnicodeDecodeError as e:
        raise SpecError(Diagnostic("E105", f"stdin is not valid UTF-8 (byte 0x{data[e.start]:02X})",
                                   Location(STDIN, 1, 1), hint="send UTF-8 text")) from None


def load_spec(spec: str | Path, limit, include_root: Optional[Path] = None, text: bool = False):
    """Load ``spec`` (see :func:`spec_source`) with the --limit and --include-root options (raises SpecError)."""
    from .. import api

    return api.load(spec_source(spec, text, limit), limits=limits(limit),
                    include_root=str(include_root) if include_root else None)


def check_spec(spec: str | Path, sets, limit, include_root: Optional[Path] = None, text: bool = False):
    """Load and check ``spec`` with the --set, --limit, --include-root and --text options (raises SpecError)."""
    from .. import api

    return api.check(load_spec(spec, limit, include_root, text), **overrides(sets))


def print_warnings(graph) -> None:
    for w in graph.warnings:
        err.print(w.format(), markup=False)


def print_summary(s) -> None:
    """A :class:`~specgraph.analysis.summary.Summary` as a rich table and its memory lines."""
    table = Table(title=s.name, show_lines=False, title_justify="left")
    for i, col in enumerate(s.columns()):
        table.add_column(col, justify="right" if i >= 3 else "left")
    for r in s.rows:
        table.add_row(*s.cells(r))
    table.add_section()
    foot = list(s.total_cells())
    foot[2] = ", ".join(s.outputs.values())
    table.add_row(*foot)
    out.print(table)
    for line in s.memory_lines():
        out.print(line, markup=False)


# ---------------------------------------------------------------- what every command shares

def _version(value: bool) -> None:
    if value:
        from .. import __version__

        out.print(f"specgraph {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def common(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="print specgraph's version and exit"),
           plugin: Optional[List[str]] = typer.Option(
               None, "--plugin", "-p", metavar="MODULE",
               help="import this module of user ops first (repeatable; also $SPECGRAPH_PLUGINS, comma-separated). "
                    "It is found in the current folder or the installed packages")) -> None:
    """Compile YAML graph specs of neural networks: check, summarize, build, render, export, train."""
    from .plugins import PluginError, load_plugins, plugin_names

    try:
        load_plugins(plugin_names(plugin))
    except PluginError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # pragma: no cover - last resort, see guarded()
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)
