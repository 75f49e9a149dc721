"""Imaging: read any real-world raster image into float32 sRGB (+ optional alpha) (decode, sniff,
colour, exif), resize, encode, save.

Decisions (the stylizer and the build rely on these):

* **Colour.** Pixels come out as plain sRGB. An embedded ICC profile (JPEG/PNG/WebP/TIFF) is
  converted to sRGB with LittleCMS (`PIL.ImageCms`), using the profile's own rendering intent.
  Profiles whose description names sRGB are not converted (they already are sRGB; converting
  would only add rounding). A corrupt or unusable profile, or one whose colour space does not
  match the pixels, is ignored: the image is treated as sRGB, like browsers do; never an error.
  Output files embed **no** ICC profile: untagged means sRGB on the web, and it keeps the bytes
  small and deterministic.
* **Precision.** 16-bit PNGs (grey, grey+alpha, RGB, RGBA) keep their 16 bits (65535 -> 1.0);
  Pillow itself would truncate 16-bit colour to 8 bits, so we decode the two bytes separately.
  A 16-bit image with an ICC profile is converted in float when the profile is a matrix/TRC
  profile (nearly all RGB and grey ones); a LUT-based profile goes through LittleCMS at 8 bits.
  16-bit colour TIFFs are read at 8 bits (Pillow's limit).
* **Alpha.** RGBA, LA, palette/grey/RGB with tRNS, GIF transparency: `alpha` is set (even if
  every pixel happens to be opaque: the source declared transparency). JPEG output cannot hold
  alpha, so `encode_image` composites onto white; BMP likewise (browser support for BMP alpha
  is patchy). PNG, WebP and TIFF keep alpha; GIF keeps 1-bit alpha (threshold 0.5).
* **Orientation.** EXIF orientation (1-8) is applied to the pixels, and the carried EXIF says 1.
* **Metadata carried.** EXIF minus the GPS IFD (privacy), minus TIFF pixel-layout tags, minus
  the IFD1 thumbnail (it would show the unstylized, unrotated picture). XMP is carried with its
  `exif:GPS*` properties and `tiff:Orientation` removed. Nothing else (IPTC, comments) is.
* **Animation.** Animated GIF/WebP/APNG and multi-page TIFF: the FIRST frame only is read;
  `frames` reports how many there are. A multi-picture JPEG (MPO, e.g. a phone's depth map)
  counts as one frame of format 'jpeg'.
* **Safety.** Only the six formats blogroto writes are decoded (no EPS/PSD/... parsers on
  untrusted bytes). The pixel count is checked against `max_pixels` from the header, before
  any pixel is decoded. Pillow's own hard ceiling (2 x `PIL.Image.MAX_IMAGE_PIXELS`, about
  179 MP) still applies on top of a larger `max_pixels`. Truncated files are errors:
  `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is never set here.
"""
