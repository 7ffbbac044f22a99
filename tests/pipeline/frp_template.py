"""What frp does to its configuration file before parsing it, for the tests (no frp binary runs here).

frp renders the file as a Go text/template with `.Envs` = the process environment (pkg/config/load.go,
`RenderWithTemplate`). Two forms appear in frp/*.toml:

- `{{ .Envs.NAME }}`: a missing NAME renders as Go's `<no value>` (a map lookup of a missing key);
- `{{ with .Envs.NAME }}{{ . }}{{ else }}{{ template "MESSAGE" }}{{ end }}`: a missing or empty NAME executes
  an undefined template, which is an execution error: frp stops with MESSAGE in its error.

Anything else in `{{ ... }}` is refused here, so a new construct cannot slip past the tests unemulated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

GUARDED = re.compile(
    r"\{\{ with \.Envs\.(?P<name>[A-Z][A-Z0-9_]*) \}\}\{\{ \. \}\}\{\{ else \}\}"
    r'\{\{ template "(?P<message>[^"]+)" \}\}\{\{ end \}\}'
)
PLAIN = re.compile(r"\{\{ \.Envs\.(?P<name>[A-Z][A-Z0-9_]*) \}\}")
ANY_ACTION = re.compile(r"\{\{.*?\}\}")


class TemplateError(Exception):
    """frp refuses to start: the template failed to execute."""


def env_names(text: str) -> set[str]:
    """Every environment variable the file reads."""
    return {m.group("name") for m in GUARDED.finditer(text)} | {m.group("name") for m in PLAIN.finditer(text)}


def render(text: str, env: Mapping[str, str]) -> str:
    def guarded(match: re.Match[str]) -> str:
        value = env.get(match.group("name"), "")
        if value == "":
            raise TemplateError(f'template: frp: template "{match.group("message")}" not defined')
        return value

    out = GUARDED.sub(guarded, text)
    out = PLAIN.sub(lambda m: env.get(m.group("name"), "<no value>"), out)
    leftover = ANY_ACTION.search(out)
    if leftover:
        raise AssertionError(f"frp_template cannot emulate {leftover.group(0)!r}")
    return out
