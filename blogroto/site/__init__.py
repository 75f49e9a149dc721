"""The Jekyll site, read: its model (model.py: config, collections, file kinds, defaults, URL
paths), the settings blogroto takes from it (config.py) and its documents with front matter
(documents.py). Only reads the author's files."""
