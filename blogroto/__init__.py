"""blogroto: neural texture transfer ("algorithmic rotoscope") for Jekyll-style static blogs.

Importing this package is cheap on purpose: TensorFlow is imported only by the modules that
stylize or train (network, stylize, vgg, train), and only when they are used.
"""

__version__ = "0.1.0"

# Bumped whenever the pixels an unchanged filter produces could change (tiling, colour
# handling, network code). It is part of every cache key.
ENGINE_VERSION = "2"
