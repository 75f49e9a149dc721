"""Jekyll's front matter, read through python-frontmatter.

`JekyllYAMLHandler` is a python-frontmatter handler (a `frontmatter.YAMLHandler`) with Jekyll's
rules in place of the library's defaults:

* the boundary (`FM_BOUNDARY`, used by the library's `detect` and by `split`) is Jekyll's
  YAML_FRONT_MATTER_REGEXP: the file starts with `---` and optional spaces on its first line, and
  the front matter ends at the first later line that is `---` or `...` (optional trailing
  spaces). The library's default (`^-{3,}\\s*$` anywhere, on stripped text) also takes `----`, a
  file that only *contains* a `---` line, and text after leading blank lines;
* `load` is `blogroto.safeyaml`'s loader (nesting, alias expansion and size bounded, errors naming
  file:line), not `yaml.load`, and refuses front matter that is not a mapping.

blogroto runs the handler's steps itself (the boundary match, then `load`: what
`frontmatter.parse` does) rather than calling `frontmatter.parse`, because `parse` strips the
text first: a file with blank lines before its `---` would get front matter Jekyll never sees,
and the offsets would no longer be those of the file. For a text that starts with its front
matter, `frontmatter.parse(text, handler=JekyllYAMLHandler(path))` gives the same data. The
offsets of the one boundary match (`spans`) are where the build splices its rewritten YAML,
byte for byte; the library's `dumps` never writes a document.

Imported only when a document is read: a no-op build never pays for python-frontmatter.
"""

from __future__ import annotations

import re
from pathlib import Path

import frontmatter

from blogroto.errors import ConfigError
from blogroto.safeyaml import compose_checked

# Jekyll's YAML_FRONT_MATTER_REGEXP, translated from Ruby (where /m means dot-all).
JEKYLL_FRONT_MATTER_RE = re.compile(r"\A(---[^\S\n]*\r?\n)(.*?\n?)^((?:---|\.\.\.)[^\S\n]*\r?$\n?)", re.M | re.S)

# The YAML always starts on the file's second line: the first is the opening `---` line.
YAML_FIRST_LINE = 2


class JekyllYAMLHandler(frontmatter.YAMLHandler):
    """python-frontmatter's YAML handler with Jekyll's delimiters and blogroto's safe YAML loader.

    `path` names the file in errors. The text given to it has no byte order mark (Jekyll reads
    files as `bom|utf-8`; `read_document` removes it first).
    """

    FM_BOUNDARY = JEKYLL_FRONT_MATTER_RE

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = path

    @classmethod
    def spans(cls, text: str) -> tuple[int, int, int] | None:
        """(YAML start, YAML end, body start) as character offsets of `text`, from the boundary
        match; None when the text has no front matter."""
        m = cls.FM_BOUNDARY.match(text)
        if m is None:
            return None
        return m.start(2), m.end(2), m.end(3)

    def split(self, text: str) -> tuple[str, str]:
        """(YAML text, body), as the library expects; ValueError when there is no front matter
        (`frontmatter.parse` then returns the text as content and no metadata)."""
        spans = self.spans(text)
        if spans is None:
            raise ValueError("no Jekyll front matter: the text does not start with a '---' line")
        yaml_start, yaml_end, body_start = spans
        return text[yaml_start:yaml_end], text[body_start:]

    def load(self, fm: str, **kwargs: object) -> dict:
        """The front matter's mapping ({} when empty), read by `blogroto.safeyaml`. Raises
        ConfigError naming the file and line for invalid, too deep, alias-bomb or non-mapping YAML."""
        if kwargs:  # YAMLHandler passes these on to yaml.load: blogroto has one YAML loader
            raise TypeError(f"JekyllYAMLHandler.load takes no YAML options: {sorted(kwargs)}")
        if not fm.strip():
            return {}
        data = compose_checked(fm, self.path, YAML_FIRST_LINE)[0]
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError("front matter must be a YAML mapping (key: value lines)", self.path, YAML_FIRST_LINE)
        return data
