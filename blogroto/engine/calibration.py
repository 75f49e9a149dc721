"""Measuring a filter's bfloat16 output against float32, and recording it in filter.yaml.

The precision policy (engine/precision.py) decides from the recorded figure; this module stylizes
to obtain it, which is why it is apart from the policy: the stylizer asks the policy, and the
measurement needs the stylizer.
"""

from __future__ import annotations

from pathlib import Path

from blogroto.engine.precision import BF16_MIN_PSNR_DB, psnr_db

CHECK_LONG_SIDE = 512  # photos are measured at this long side (blog-sized, cheap)


def measure_bfloat16_psnr(flt, photos: list[Path] | None = None, long_side: int = CHECK_LONG_SIDE) -> float:
    """Worst PSNR (dB) of the filter's bfloat16 output against its float32 output over `photos`
    (default: the built-in content photos, real photos shipped with blogroto)."""
    from blogroto.datasets import content_images
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    options = StyleOptions(max_size=0)
    exact, reduced = Stylizer(precision="float32"), Stylizer(precision="bfloat16")
    worst = float("inf")
    for photo in photos or content_images():
        rgb = resize_long_side(load_image(photo), long_side).rgb
        worst = min(worst, psnr_db(exact.stylize_array(rgb, flt, options), reduced.stylize_array(rgb, flt, options)))
    return worst


def precision_record(psnr: float) -> dict:
    """The `precision:` section of filter.yaml for a measured bfloat16 PSNR."""
    from blogroto.datasets import content_images

    return {"bfloat16_psnr_db": round(float(psnr), 1), "threshold_db": BF16_MIN_PSNR_DB,
            "measured_on": f"{len(content_images())} built-in photos at {CHECK_LONG_SIDE} px"}


def record_bfloat16_psnr(folder: str | Path) -> float:
    """Measure an existing filter's bfloat16 PSNR and record it in its filter.yaml (atomically)."""
    from blogroto.filters import load_filter, write_metadata

    flt = load_filter(folder)
    psnr = measure_bfloat16_psnr(flt)
    write_metadata(folder, {**flt.meta, "precision": precision_record(psnr)})
    return psnr
