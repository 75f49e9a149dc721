"""An imported network written as a blogroto filter folder: weights, filter.yaml with its provenance,
the preview and before/after example."""

from __future__ import annotations

import datetime
import hashlib
import shutil
from pathlib import Path

from blogroto import __version__
from blogroto.errors import BlogrotoError
from blogroto.importing.model import ORIGINALS, Imported
from blogroto.importing.tf1 import checkpoint_prefix


def sha256_of(files: list[Path]) -> str:
    """One sha256 over the files' bytes in this order (a checkpoint's index and data files)."""
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as handle:
            hashlib.file_digest(handle, lambda: digest)
    return digest.hexdigest()


def provenance(imported: Imported, source: Path) -> dict:
    """filter.yaml's `training:` record of an imported network."""
    files = imported.files
    record = {"file": provenance_file(imported, source), "sha256": sha256_of(files)}
    if len(files) > 1:
        record["files"] = [f.name for f in files]  # the sha256 is of their bytes in this order
    return {
        "imported_from": record,
        "format": imported.format,
        "container": imported.container,
        "original": ORIGINALS[imported.format],
        "parameters": imported.parameters,
        "blogroto_version": __version__,
        "date": datetime.date.today().isoformat(),
    }


def write_filter(imported: Imported, source_path: Path, name: str, out_dir: Path, source: dict, *,
                 display_name: str | None = None, description: str | None = None, artwork: Path | None = None,
                 force: bool = False, precision_check: bool = False, log=lambda msg: None):
    """Write `imported` as the filter folder out_dir/name: weights, filter.yaml, the preview and the
    before/after example (rendered as `blogroto train` renders a trained filter's), the artwork
    when given. Swapped into place in one rename; an existing folder only with `force`."""
    from blogroto.engine.filter_folder import (
        load_filter_as,
        save_artwork,
        swap_into_place,
    )
    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.filters import (
        DEFAULT_FILES,
        SLUG_RE,
        NetworkSpec,
        load_filter,
        write_metadata,
    )

    if not SLUG_RE.match(name):
        raise BlogrotoError(f"filter name {name!r} must be lower-case letters, digits and dashes")
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not force:
        raise BlogrotoError("a filter of this name exists already (--force replaces it)", final)
    if artwork is not None and not Path(artwork).is_file():
        raise BlogrotoError("artwork not found", artwork)
    partial = out_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        net = TransformNet(imported.width, imported.blocks, arch=imported.arch).ensure_built()
        net.set_weight_dict(imported.weights, source=source_path)
        save_weights(net, partial / DEFAULT_FILES["weights"])
        del net
        files = {"weights": DEFAULT_FILES["weights"]}
        if artwork is not None:
            save_artwork(partial, artwork)
            files["artwork"] = DEFAULT_FILES["artwork"]
        tool = {"fast-style-transfer": "fast-style-transfer", "pytorch": "pytorch/examples fast_neural_style",
                "onnx": "an ONNX export of pytorch/examples fast_neural_style"}[imported.format]
        meta = {
            "format": 1,
            "name": name,
            "display_name": display_name or name.replace("-", " ").title(),
            "description": description or f"Colours and textures learned from {source['title']} with {tool}, "
                                          f"imported from {provenance_file(imported, source_path)}.",
            "source": source,
            "network": NetworkSpec(imported.width, imported.blocks, "instance", imported.arch).as_dict(),
            "training": provenance(imported, source_path),
            "files": files,
        }
        write_metadata(partial, meta)
        flt = load_filter_as(partial, name)  # validate before it becomes visible
        log(f"rendering the preview and the before/after example of {name}")
        files.update(render_examples(flt, partial))  # `meta` holds this very dict
        write_metadata(partial, meta)
        if precision_check:
            from blogroto.engine.calibration import (
                measure_bfloat16_psnr,
                precision_record,
            )

            log("measuring bfloat16 against float32 on the built-in photos (--no-precision-check skips it)")
            meta["precision"] = precision_record(measure_bfloat16_psnr(flt))  # the weights validated above
            write_metadata(partial, meta)
        load_filter_as(partial, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_into_place(partial, final)
    return load_filter(final)


def provenance_file(imported: Imported, source_path: Path) -> str:
    return imported.files[0].name if len(imported.files) == 1 else checkpoint_prefix(source_path).name


def render_examples(flt, folder: Path) -> dict[str, str]:
    """The preview and before/after pictures of the built-in preview photo, as `blogroto train`
    makes a trained filter's (blogroto.engine.train.save_examples)."""
    from blogroto import datasets
    from blogroto.engine.filter_folder import EXAMPLE_SIDE, save_examples
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    img = resize_long_side(load_image(datasets.preview_photo()), EXAMPLE_SIDE)
    return save_examples(folder, img.rgb, Stylizer(precision="float32").stylize_array(img.rgb, flt, StyleOptions(max_size=0)))


def describe_import(training: dict) -> str | None:
    """'Imported from mosaic.pth (pytorch/examples fast_neural_style ...)' for an imported
    filter's training record, None for a trained one."""
    record = training.get("imported_from") if isinstance(training, dict) else None
    if not isinstance(record, dict):
        return None
    text = f"Imported from {record.get('file') or 'a file'}"
    original = training.get("original")
    if original:
        text += f", a network trained with {original}"
    return text
