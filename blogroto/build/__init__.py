"""The build pipeline: a Jekyll site in, a complete copy of it out, with stylized images and credits.

    report = Builder("site/", BuildOptions()).build()          # full scan
    report = builder.build(paths=["site/_posts/x.md"])          # only what these changed files affect

The author's files are never written. The output (default `SITE/_blogroto/site/`) is a tree that
`jekyll build` builds like the source: unchanged files are hard links (copies across file
systems), documents with `algorotoscope:` front matter are rewritten, stylized images go to
`assets/algorotoscope/<stem>-<filter>-<hash>.<ext>`. blogroto never writes through a hard link
(every output write replaces the name atomically), but an editor that saves a source file in
place changes its output twin too: they are one file, which is what a mirror wants anyway.

Speed on an unchanged site comes from the build manifest (one JSON file per output folder in the
cache folder): for every source file the stat it had and the outputs (with their stats) it
produced, for every stylized document the stats of the images it read. A no-op build is then a
directory walk, a stat per output and a dict comparison: no file is read, hashed or parsed, and
neither TensorFlow nor Pillow nor Jinja2 is imported.

Phases of a build: scan -> plan the changed documents (parse, find and resolve image references)
-> hash local images / fetch remote ones -> look up the output cache -> stylize the misses (TF is
imported here, and only if there is a miss) -> write documents, images and links -> remove
outputs whose sources vanished -> save the manifest.

The package, by stage: `api` (Builder), `run` (one run, stage by stage), `plan` (what a document's
references become), `files`, `figures`, `front_matter` (the rewrite), `manifest`, `output` (the
folder blogroto owns), `report`. The names below are the build's public API.
"""

from blogroto.build.api import Builder
from blogroto.build.front_matter import rewrite_front_matter
from blogroto.build.output import OUTPUT_MARKER
from blogroto.build.plan import IMAGES_DIR
from blogroto.build.report import BuildOptions, BuildReport, GcReport

__all__ = ["Builder", "BuildOptions", "BuildReport", "GcReport", "IMAGES_DIR", "OUTPUT_MARKER", "rewrite_front_matter"]
