"""Find and rewrite the image references in a Markdown/HTML post body, code-aware.

``find_image_refs(body)`` reports every image the body shows:

* Markdown inline images ``![alt](src "title")`` (also ``<src>`` and titles in '…', "…", (…));
* reference images ``![alt][id]``, ``![alt][]``, ``![alt]``: the *definition*
  ``[id]: src "title"`` is reported, once, however often it is used;
* HTML ``<img src=…>`` and every candidate of ``srcset=…`` (on ``<img>`` and ``<source>``);
* HTML ``<video src=…>``, ``<video poster=…>`` (an image) and ``<source src=…>`` (a video).

Nothing inside code spans, fenced or indented code blocks, ``<pre>``/``<code>``/``<script>``/
``<style>``/``<textarea>`` elements, HTML comments, Liquid ``{% raw %}``/``{% highlight %}``/
``{% comment %}`` blocks or kramdown ``{::comment}`` is reported, and so nothing there is ever
rewritten.

Jekyll runs Liquid before Markdown, so a URL may carry Liquid (``{{ site.baseurl }}/a.jpg``,
``{{ "/a.jpg" | relative_url }}``). ``ImageRef.path`` is the bare path and ``start``/``end`` its
span in the body, so a rewrite replaces only the path and the Liquid around it stays byte-identical.

The block structure is a CommonMark approximation (block quotes, list items, fences, indented
code, headings); inline parsing follows CommonMark's bracket algorithm. Every search that could
run to the end of the text is either bounded by the paragraph or memoised, so the scan stays
(near) linear on hostile input: there is no regex with nested ambiguous quantifiers.
"""

from blogroto.references.model import (
                                       HTML_POSTER,
                                       HTML_SRC,
                                       HTML_SRCSET,
                                       HTML_VIDEO,
                                       MD_INLINE,
                                       MD_REFERENCE,
                                       OPT_OUT_ATTR,
                                       OPT_OUT_CLASS,
                                       ImageRef,
)
from blogroto.references.rewrite import find_image_refs, rewrite_image_refs

__all__ = ["ImageRef", "find_image_refs", "rewrite_image_refs", "MD_INLINE", "MD_REFERENCE", "HTML_SRC", "HTML_SRCSET",
           "HTML_POSTER", "HTML_VIDEO", "OPT_OUT_CLASS", "OPT_OUT_ATTR"]
