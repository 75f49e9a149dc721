"""The one way blogroto reads YAML: safe tags only, bounded nesting, bounded alias expansion.

Every YAML file blogroto reads (filter.yaml, front matter, _config.yml, the datasets'
CREDITS.yaml, a preview's `_data/*.yml`) goes through `load_yaml`. It

* refuses nesting deeper than MAX_YAML_DEPTH before composing (libyaml's composer recurses in C:
  some 100 000 nested `[` crash the interpreter);
* composes the node graph (anchors and aliases stay shared: composing costs the size of the
  text), then counts the nodes the document would have with every alias expanded, memoised per
  node, and refuses a document whose aliases add more than MAX_ALIAS_EXPANSION (a "billion
  laughs" needs only a few hundred bytes to stand for 10**9 strings: a title made of one took
  47 s and 3.3 GB once something turned it into text);
* only then constructs the Python data, with the safe constructor.

Refusals are ConfigError naming the file and line. Nothing heavy is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from blogroto.errors import ConfigError

try:  # libyaml is ~10x faster; reading every post's front matter on a cold build adds up
    FastLoader = yaml.CSafeLoader
    FastDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    FastLoader = yaml.SafeLoader
    FastDumper = yaml.SafeDumper

MAX_YAML_DEPTH = 200
# Nodes that aliases may add to a document beyond its own: generous for `defaults: &d` reused a
# few times, far below anything that hurts. A scalar counts 1 per started 64 characters, so one
# long string repeated through aliases is measured by what it would become.
MAX_ALIAS_EXPANSION = 20_000
_SCALAR_UNIT = 64


def check_yaml_depth(text: str, path, first_line: int) -> None:
    """Refuse YAML nested deeper than MAX_YAML_DEPTH before composing it: libyaml's composer
    recurses in C, and some 100 000 nested `[` (200 kB of front matter) crash the interpreter
    with SIGSEGV. The event parser it runs on first is iterative and streams, so this is cheap."""
    if sum(map(text.count, "[{-?:")) <= MAX_YAML_DEPTH:
        return  # every collection starts with one of these: it cannot nest that deep
    too_deep = f"YAML nested more than {MAX_YAML_DEPTH} levels deep"
    depth = 0
    try:
        for event in yaml.parse(text, Loader=FastLoader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(too_deep, path, first_line + event.start_mark.line)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        # PyYAML >= 6.0.4 refuses deep nesting itself (its scanner reads ahead of our count): the
        # same refusal, in our words, whichever PyYAML pip installed. Other YAML errors are left
        # for the real load to report.
        if "nesting depth" not in str(exc):
            return
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(too_deep, path, first_line + (mark.line if mark is not None else 0)) from exc


def _cost(node: yaml.Node) -> int:
    if isinstance(node, yaml.ScalarNode):
        return 1 + len(node.value) // _SCALAR_UNIT
    return 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_alias_expansion(node: yaml.Node | None, path, first_line: int = 1,
                          budget: int = MAX_ALIAS_EXPANSION) -> None:
    """Refuse a composed document whose aliases expand beyond `budget` nodes, or refer to
    themselves (a recursive structure never ends when written out as text)."""
    if node is None:
        return
    expanded: dict[int, int] = {}  # id(node) -> its size with every alias expanded
    own = 0  # the size of the distinct nodes: what the text itself holds
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            active.discard(key)
            size = _cost(current) + sum(expanded[id(c)] for c in _children(current))
            expanded[key] = size
            own += _cost(current)
            if size - own > budget:
                raise ConfigError(f"YAML aliases expand to more than {budget} nodes beyond the document's own "
                                  "(an alias bomb?); refused", path, first_line + current.start_mark.line)
            continue
        if key in expanded:
            continue
        if key in active:
            raise ConfigError("YAML alias refers to the node that contains it (a recursive structure); refused",
                              path, first_line + current.start_mark.line)
        active.add(key)
        stack.append((current, True))
        for child in reversed(_children(current)):
            if id(child) in active:
                raise ConfigError("YAML alias refers to the node that contains it (a recursive structure); refused",
                                  path, first_line + child.start_mark.line)
            if id(child) not in expanded:
                stack.append((child, False))
    # A node reached twice while still unexpanded is pushed twice: the second visit finds it in
    # `expanded` and is skipped, so each distinct node is expanded (and counted in `own`) once.


def yaml_error_line(exc: yaml.YAMLError, first_line: int, text: str | None = None) -> int | None:
    """The 1-based file line of a YAML error whose text started at file line `first_line`."""
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    at_end = mark is not None and text is not None and mark.index >= len(text.rstrip())
    if context is not None and (mark is None or at_end or "flow" in (getattr(exc, "context", "") or "")):
        # An unclosed [..]/{..} is noticed lines later, or only at the end of the text: point at
        # where it was opened. (For block mappings the problem mark is the better line.)
        mark = context
    return first_line + mark.line if mark is not None else None


def yaml_error_text(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        return f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return f"invalid YAML: {exc}"


def compose_checked(text: str, path: str | Path | None, first_line: int = 1) -> tuple[Any, yaml.Node | None]:
    """(data, node) of one YAML document, after the depth and alias checks.

    Raises ConfigError (naming `path` and the line) for invalid, too deep or alias-bomb YAML.
    """
    check_yaml_depth(text, path, first_line)
    loader = FastLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error_text(exc), path, yaml_error_line(exc, first_line, text)) from exc
        check_alias_expansion(node, path, first_line)
        if node is None:
            return None, None
        try:
            return loader.construct_document(node), node
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error_text(exc), path, yaml_error_line(exc, first_line, text)) from exc
    except RecursionError as exc:  # belt and braces: the depth check comes first
        raise ConfigError(f"YAML nested more than {MAX_YAML_DEPTH} levels deep", path, first_line) from exc
    finally:
        loader.dispose()


def load_yaml(text: str, path: str | Path | None, first_line: int = 1) -> Any:
    """The data of one YAML document (see compose_checked)."""
    return compose_checked(text, path, first_line)[0]


def load_yaml_file(path: str | Path) -> Any:
    """The data of a UTF-8 YAML file; ConfigError naming the file for unreadable or refused YAML."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path) from exc
    return load_yaml(text, path)
