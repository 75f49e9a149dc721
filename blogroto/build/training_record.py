"""A filter's training record (`training:` in filter.yaml), in words: the one-line summary and the
detail rows a catalog page shows (how long, on what, which recipe; or where an imported filter
came from)."""

from __future__ import annotations

import re
from collections.abc import Mapping


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        n = max(1, round(seconds))
        return f"{n} second{'s' if n != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours, rest = divmod(minutes, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text + (f" {rest} minute{'s' if rest != 1 else ''}" if rest else "")


def _device(device: str) -> str:
    kind, sep, detail = device.partition(":")
    if sep and kind.strip().upper() in ("CPU", "GPU", "TPU"):
        detail = re.sub(r"\s*\(([^()]*)\)\s*$", r", \1", detail.strip())
        return f"on a {kind.strip().upper()}" + (f" ({detail})" if detail else "")
    return f"on {device}"


def describe_training(training: Mapping) -> str:
    """The training record in a sentence: 'Trained for 9,000 steps in 28 minutes on a CPU (...)'."""
    if not training:
        return "No training record was kept for this filter."
    from blogroto.importing import describe_import

    imported = describe_import(training)
    if imported:  # `blogroto import`: trained elsewhere
        return imported + "."
    steps = training.get("steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps == 0:
        note = f" ({training['note']})" if training.get("note") else ": the network has random weights"
        return f"Not trained{note}."
    text = "Trained"
    if isinstance(steps, (int, float)) and not isinstance(steps, bool):
        text += f" for {int(steps):,} steps"
    if isinstance(training.get("seconds"), (int, float)) and not isinstance(training.get("seconds"), bool):
        text += f" in {_duration(training['seconds'])}"
    if training.get("device"):
        text += " " + _device(str(training["device"]))
    return text + "."


def training_details(training: Mapping) -> list[tuple[str, str]]:
    """(label, value) pairs of the other parts of the record worth showing."""
    rows = []
    record = training.get("imported_from")
    if isinstance(record, dict):
        if training.get("container"):
            rows.append(("Imported file", f"{record.get('file')} ({training['container']})"))
        if record.get("sha256"):
            rows.append(("SHA-256", str(record["sha256"])))
        if training.get("parameters"):
            rows.append(("Parameters", f"{training['parameters']:,}" if isinstance(training["parameters"], int)
                         else str(training["parameters"])))
    if training.get("date"):
        rows.append(("Imported" if isinstance(record, dict) else "Date", str(training["date"])))
    if training.get("preset"):
        rows.append(("Preset", str(training["preset"])))
    teacher = training.get("teacher")
    if isinstance(teacher, dict) and teacher.get("name"):
        net = teacher.get("network") or {}
        size = f" (width {net['width']}, {net['blocks']} blocks)" if net.get("width") and net.get("blocks") else ""
        rows.append(("Distilled from", f"{teacher.get('display_name') or teacher['name']}{size}"))
    if training.get("resolution"):
        batch = f", batches of {training['batch_size']}" if training.get("batch_size") else ""
        rows.append(("Photos", f"{training['resolution']} px crops{batch}"))
    content = training.get("content_set")
    if isinstance(content, list) and content:
        rows.append(("Content set", f"{len(content)} photos"))
    if training.get("style_size"):
        rows.append(("Artwork size", f"{training['style_size']} px"))
    weights = training.get("loss_weights")
    if isinstance(weights, dict) and weights:
        rows.append(("Loss weights", ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                                 for k, v in weights.items())))
    if training.get("precision"):
        # Keras policy names ("mixed_bfloat16") in words
        kind, _, dtype = str(training["precision"]).rpartition("_")
        rows.append(("Precision", f"{dtype} mixed precision" if kind == "mixed" else str(training["precision"])))
    if training.get("vgg_weights"):
        rows.append(("Perceptual network", str(training["vgg_weights"])))
    if training.get("seed") is not None:
        rows.append(("Seed", str(training["seed"])))
    if training.get("blogroto_version"):
        rows.append(("blogroto", str(training["blogroto_version"])))
    return rows
