"""Documents with front matter: Jekyll's delimiters, the YAML read with its key lines (for
path:line errors) and the exact spans blogroto splices when it rewrites a document.

The front matter is read with python-frontmatter, through `blogroto.site.jekyll_front_matter`'s
handler (Jekyll's delimiters, blogroto's safe YAML loader), imported when a document is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from blogroto.errors import ConfigError
from blogroto.safeyaml import FastLoader


def mapping_key_lines(node: yaml.Node | None, first_line: int) -> dict[str, int]:
    """Top-level key -> 1-based file line, from a composed YAML mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): first_line + k.start_mark.line for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


# --------------------------------------------------------------------------------------------
# documents


@dataclass
class FrontMatter:
    """Where the YAML block of a document lies in its text (character offsets)."""

    yaml_start: int  # first character of the YAML text (after the opening '---' line)
    yaml_end: int  # one past its last character (the closing '---' line starts here)
    body_start: int  # first character after the closing line

    def yaml_text(self, text: str) -> str:
        return text[self.yaml_start:self.yaml_end]


def split_front_matter(text: str) -> FrontMatter | None:
    """Locate Jekyll front matter in `text` (BOM already removed); None if there is none."""
    from blogroto.site.jekyll_front_matter import JekyllYAMLHandler

    spans = JekyllYAMLHandler.spans(text)
    return None if spans is None else FrontMatter(*spans)


@dataclass
class Document:
    """A file with front matter: a post, draft, collection document or page."""

    path: Path  # absolute
    rel: str  # posix path relative to the site root
    kind: str  # "posts", "drafts", "pages" or a collection label
    text: str  # whole file, BOM removed
    bom: bool
    front: FrontMatter
    data: dict  # the document's own front matter (not including defaults)

    @property
    def body(self) -> str:
        return self.text[self.front.body_start:]

    @property
    def body_line(self) -> int:
        """1-based file line on which the body starts."""
        return self.text.count("\n", 0, self.front.body_start) + 1

    @property
    def yaml_line(self) -> int:
        """1-based file line of the first line of YAML text."""
        return self.text.count("\n", 0, self.front.yaml_start) + 1

    @property
    def yaml_text(self) -> str:
        return self.front.yaml_text(self.text)

    @property
    def folder_rel(self) -> str:
        return posixpath_dirname(self.rel)

    def key_line(self, key: str) -> int | None:
        """The file line of top-level front-matter `key` (None if it is not in the file)."""
        try:
            node = yaml.compose(self.yaml_text, Loader=FastLoader)
        except yaml.YAMLError:
            return None
        return mapping_key_lines(node, self.yaml_line).get(key)

    def option_lines(self, key: str) -> dict[str, int]:
        """File lines of the keys inside top-level mapping `key` (e.g. algorotoscope's options)."""
        try:
            node = yaml.compose(self.yaml_text, Loader=FastLoader)
        except yaml.YAMLError:
            return {}
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return mapping_key_lines(v, self.yaml_line)
        return {}

    @property
    def is_markdown(self) -> bool:
        return Path(self.rel).suffix.lower() in MARKDOWN_SUFFIXES

    def encode(self, text: str) -> bytes:
        return (("\ufeff" + text) if self.bom else text).encode("utf-8")


MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mkdown", ".mkdn", ".mkd", ".mdown", ".mdwn", ".mdtxt", ".mdtext"})


def posixpath_dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def read_document(path: Path, rel: str, kind: str, *, raw: bytes | None = None) -> Document | None:
    """Parse a file's front matter; None if it has none. Raises ConfigError naming file:line."""
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError("not valid UTF-8 text", path, line) from exc
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    from blogroto.site.jekyll_front_matter import JekyllYAMLHandler

    handler = JekyllYAMLHandler(path)
    spans = handler.spans(text)
    if spans is None:
        return None
    front = FrontMatter(*spans)
    return Document(path, rel, kind, text, bom, front, handler.load(front.yaml_text(text)))


# --------------------------------------------------------------------------------------------
# the site


