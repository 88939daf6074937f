"""`require:` — what a combination of params (and input shapes) must satisfy.

```yaml
require:
  "${len(block_config) <= 4}": "torchvision's DenseNets have at most four dense blocks"
  "${x.channels % groups == 0}": "the groups split the input channels"
```

Each key is a boolean expression, each value the message shown when it is false: E310 at the
key, with the values of the names it reads, so that no parameter combination silently builds
a different model than the one the spec describes.  A spec's requirements see its params,
`let` values and inputs; a block's, its params, `uses`, `let` values and inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..lang.expr import is_expression, referenced_names
from ..lang.marked_yaml import Source
from .reporting import Poisoned

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


def check_requirements(ex: "Expander", require: dict[str, Any], env: Mapping, src: Source, ypath: tuple,
                       path: str | None) -> None:
    """Report each requirement that is false (E310) or no boolean (E204); raises Poisoned if any."""
    failed = False
    for condition, message in require.items():
        where = ypath + (condition,)
        try:
            if not is_expression(condition):
                raise ex.error("E204", f"a requirement is an expression like \"${{depth > 0}}\", found {condition!r}",
                               src, where, key=True, path=path, hint="write the condition as the key, the message as its value")
            if not isinstance(message, str):
                raise ex.error("E203", f"the message of a requirement is text, found {message!r}", src, where, path=path)
            holds = ex.evaluate(condition, env, src, where, path)
            if not isinstance(holds, bool):
                raise ex.error("E204", f"a requirement must be true or false, found {holds!r}", src, where, key=True,
                               path=path, hint="compare explicitly, e.g. \"${len(depths) == 4}\"")
            if not holds:
                shown = [f"{name} = {_value(env, name)}" for name in sorted(referenced_names(condition))
                         if name in env]
                raise ex.error("E310", f"requirement not met: {message}", src, where, key=True, path=path,
                               details=(f"{condition[2:-1] if condition.startswith('${') else condition[1:]} "
                                        f"is false" + (f" with {', '.join(shown)}" if shown else ""),))
        except Poisoned:
            failed = True
    if failed:
        raise Poisoned()


def _value(env: Mapping, name: str) -> str:
    text = repr(env[name])
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["check_requirements"]
