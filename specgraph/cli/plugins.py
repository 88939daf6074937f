"""``--plugin`` / ``SPECGRAPH_PLUGINS``: import the user's op modules before any command runs.

A plugin is a Python module path (``mypkg.ops``); importing it registers its ops (``@register_op``)
for every command: check, build, render, export, train, ops, schema.  The current folder is
searched first, as ``python -m`` does, so a ``myops.py`` beside the spec is found.  The spec
itself never names code to import: which code runs is the command line's decision alone.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback

ENV = "SPECGRAPH_PLUGINS"


class PluginError(Exception):
    """A plugin module that cannot be imported; the message says which and why."""


def plugin_names(given: list[str] | None, environ: dict[str, str] | None = None) -> list[str]:
    """The modules to import: ``SPECGRAPH_PLUGINS`` (commas or spaces between) then ``--plugin``."""
    env = (os.environ if environ is None else environ).get(ENV, "")
    names = [n for n in re.split(r"[,\s]+", env) if n] + list(given or [])
    return list(dict.fromkeys(names))  # each once, in order


def load_plugins(names: list[str]) -> None:
    """Import each module of ``names``; raises PluginError naming the first that fails."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
            raise PluginError(f"plugin {name!r} is not a module path like mypkg.ops"
                              + (" (name the module, not its file)" if name.endswith(".py") else ""))
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the plugin itself, not something it imports
                raise PluginError(f"plugin {name!r}: no module named {e.name!r} (searched the current folder "
                                  f"and the installed packages)") from None
            raise PluginError(f"plugin {name!r} failed to import: {_where(e)}") from None
        except Exception as e:  # the plugin's own code failed: say where, without a traceback
            raise PluginError(f"plugin {name!r} failed to import: {_where(e)}") from None


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename]
    at = f" (at {user[-1].filename}:{user[-1].lineno})" if user else ""
    return f"{type(e).__name__}: {e}{at}"


__all__ = ["ENV", "PluginError", "plugin_names", "load_plugins"]
