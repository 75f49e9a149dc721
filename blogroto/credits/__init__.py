"""Credits for the artworks behind the filters: one record (record.py), rendered as the block under
a post and figure captions (render.py), embedded as XMP in the stylized files (xmp.py) and as
schema.org JSON-LD on the page (jsonld.py). Every published URL goes through `record.safe_url`."""
