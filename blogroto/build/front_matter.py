"""Front matter, rewritten: stylized image paths and the credits spliced into the author's YAML
byte for byte where nothing changed (comments, quoting and order kept)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from blogroto.build.plan import Ref
from blogroto.safeyaml import FastDumper, FastLoader
from blogroto.site.config import (
    CREDITS_KEY,
    IMAGES_KEY,
)
from blogroto.site.documents import Document


@dataclass
class _FrontLoc:
    key: str  # top-level key
    node: Any  # yaml ScalarNode in the document's own front matter, or None when from defaults
    path: tuple  # how to reach the value inside data[key]: () or ("path",) or (index, "image") ...
    default: Any = None  # the whole value from `defaults:` when the document does not set the key


def front_matter_refs(doc: Document, keys: tuple[str, ...], defaults: dict) -> list[Ref]:
    """References in the image keys of the front matter, with the YAML nodes that hold them."""
    refs: list[Ref] = []
    own = {k for k in keys if k in doc.data}
    node = None
    if own:
        node = yaml.compose(doc.yaml_text, Loader=FastLoader)
    first = doc.yaml_line
    top = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                top[k.value] = v

    def add(key, value, vnode, path, own_key=True, default=None):
        if isinstance(value, str) and value.strip():
            line = first + vnode.start_mark.line if vnode is not None else None
            refs.append(Ref("front", value, line, _FrontLoc(key, vnode, path, None if own_key else default)))

    def child(vnode, name):
        if isinstance(vnode, yaml.MappingNode):
            for k, v in vnode.value:
                if isinstance(k, yaml.ScalarNode) and k.value == name:
                    return v
        return None

    for key in keys:
        own_key = key in doc.data
        if own_key:
            value, vnode = doc.data[key], top.get(key)
        elif key in defaults:
            value, vnode = defaults[key], None
        else:
            continue
        default = value
        if isinstance(value, str):
            add(key, value, vnode, (), own_key, default)
        elif isinstance(value, dict):
            for sub in ("path", "image", "url"):
                if isinstance(value.get(sub), str):
                    add(key, value[sub], child(vnode, sub), (sub,), own_key, default)
                    break
        elif isinstance(value, list):
            items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [None] * len(value)
            for i, (item, inode) in enumerate(zip(value, items)):
                if isinstance(item, str):
                    add(key, item, inode, (i,), own_key, default)
                elif isinstance(item, dict):
                    for sub in ("image", "path", "url"):
                        if isinstance(item.get(sub), str):
                            add(key, item[sub], child(inode, sub), (i, sub), own_key, default)
                            break
    return refs


def _yaml_scalar(value: str, style: str | None, flow: bool) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value, ensure_ascii=False)
    plain_ok = (re.fullmatch(r"[A-Za-z0-9_./~%+@-][^#:\s,\[\]{}]*", value) is not None
                and not value.startswith(("@", "%"))
                and yaml.load(value, Loader=FastLoader) == value)
    if flow and any(c in value for c in ",[]{}"):
        plain_ok = False
    return value if plain_ok else json.dumps(value, ensure_ascii=False)


def _set_in(data: dict, key: str, path: tuple, value: str) -> None:
    if not path:
        data[key] = value
        return
    target = data[key]
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value


def rewrite_front_matter(doc: Document, refs: list[Ref], credits: list[dict], images: dict | None = None) -> str:
    """The document's YAML text with the image values replaced and `algorotoscope_credits` added
    (and `algorotoscope_images`, when front-matter images have responsive data for layouts).

    Edits the author's text in place (comments, order and quoting survive); only when the result
    would not parse back to the intended data does it fall back to dumping the whole mapping.
    """
    import copy

    yaml_text = doc.yaml_text
    nl = "\r\n" if "\r\n" in yaml_text else "\n"
    expected = copy.deepcopy(doc.data)
    edits: list[tuple[int, int, str]] = []
    added: dict[str, Any] = {}
    for ref in refs:
        loc: _FrontLoc = ref.handle
        if loc.node is not None:
            if loc.key not in expected:
                continue
            _set_in(expected, loc.key, loc.path, ref.new)
            n = loc.node
            if not isinstance(n, yaml.ScalarNode) or n.style in ("|", ">"):
                edits = None
                break
            flow = doc.yaml_text[n.start_mark.index - 1: n.start_mark.index] in ("[", ",", " ") and _in_flow(doc, n)
            edits.append((n.start_mark.index, n.end_mark.index, _yaml_scalar(ref.new, n.style, flow)))
        else:
            # The value came from `defaults:` in _config.yml: state the stylized one explicitly.
            if loc.key not in added:
                added[loc.key] = copy.deepcopy(loc.default)
            _set_in(added, loc.key, loc.path, ref.new)
    expected.update(added)
    expected[CREDITS_KEY] = credits
    ours = {CREDITS_KEY: credits}
    if images:
        expected[IMAGES_KEY] = ours[IMAGES_KEY] = images
    text = None
    if edits is not None and not set(ours) & set(doc.data):
        text = yaml_text
        for start, end, new in sorted(set(edits), reverse=True):
            text = text[:start] + new + text[end:]
        if text and not text.endswith("\n"):
            text += nl
        extra = "# added by blogroto build: credits for the artworks behind the stylized images" + nl
        if added:
            extra += _dump(added).replace("\n", nl)
        extra += _dump(ours).replace("\n", nl)
        text += extra
        try:
            ok = _same_data(yaml.load(text, Loader=FastLoader), expected)
        except yaml.YAMLError:
            ok = False
        if not ok:
            text = None
    if text is None:
        text = _dump(expected).replace("\n", nl)
    return text


def _same_data(a: Any, b: Any, seen: set | None = None) -> bool:
    """`a == b` for YAML data, comparing each pair of shared (aliased) containers once: a
    'billion laughs' front matter (aliases nested 9 deep) is a few dozen nodes, not 10**9 leaves."""
    seen = set() if seen is None else seen
    if isinstance(a, (dict, list)) and type(a) is type(b):
        if (id(a), id(b)) in seen:
            return True
        seen.add((id(a), id(b)))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(_same_data(v, b[k], seen) for k, v in a.items())
        return len(a) == len(b) and all(_same_data(x, y, seen) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def _in_flow(doc: Document, node) -> bool:
    # A scalar inside [..] or {..}: commas and brackets end a plain scalar there.
    before = doc.yaml_text[: node.start_mark.index]
    return before.count("[") + before.count("{") > before.count("]") + before.count("}")


def _dump(data: dict) -> str:
    return yaml.dump(data, Dumper=FastDumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=10**6)
