"""Helpers the benchmark scripts share."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_line() -> str:
    """CPU model, cores, RAM and Python version, for a results file."""
    from blogroto.engine.precision import cpu_name

    model = cpu_name() or platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def cpu_facts() -> dict:
    """CPU model (with its family and model numbers, as machine_line), logical cores as lscpu reports
    them, the CPU's flags, and RAM, for JSON results."""
    import subprocess

    from blogroto.engine.precision import cpu_name

    model, cores = cpu_name() or "?", "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("CPU(s):"):
                cores = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": cores, "flags": flags, "ram_gib": round(ram, 1)}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was while a benchmark ran."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_keeping_section(path: Path, text: str, heading: str) -> None:
    """Write a generated results file, keeping its hand-written section `heading` (the reading of the
    numbers) and everything after it from the previous version; update that part by hand."""
    marker = f"\n{heading}"
    old = path.read_text() if path.exists() else ""
    if marker in old:
        text = text.rstrip("\n") + "\n" + old[old.index(marker):]
    path.write_text(text)
