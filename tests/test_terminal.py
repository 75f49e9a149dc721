"""What reaches the author's terminal: no TensorFlow log lines, progress bars that do not break
lines, coloured prefixes only where wanted (issue 11)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap

from click.testing import CliRunner

from tests.conftest import REPO, make_filter, make_photo


def test_no_tensorflow_log_line_reaches_the_author(tmp_path):
    """Six filters in one process (what `blogroto catalog` does) traced TF's multi-line
    'triggered tf.function retracing' warning from the fifth on."""
    for i in range(6):
        make_filter(tmp_path / "filters", f"f{i}", seed=i)
    script = textwrap.dedent(f"""
        import numpy as np
        from blogroto.filters import FilterLibrary
        from blogroto.engine.stylize import StyleOptions, Stylizer
        lib = FilterLibrary([{str(tmp_path / 'filters')!r}], include_builtin=False, include_user=False)
        s = Stylizer()
        rgb = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
        for flt in lib.all():
            s.stylize_array(rgb, flt, StyleOptions(max_size=0))
            s.stylize_array(rgb[:12, :16], flt, StyleOptions(max_size=0))  # another size: no retrace either
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as an author's shell has it
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "retracing" not in proc.stderr and "WARNING:tensorflow" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_apply_prints_beside_the_progress_bar(tmp_path, tiny_filter, monkeypatch):
    import tqdm

    from blogroto.cli import cli

    photos = [make_photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(2)]
    written = []
    real_write = tqdm.tqdm.write
    monkeypatch.setattr(tqdm.tqdm, "write", classmethod(lambda cls, s, *a, **k: (written.append(s),
                                                                                 real_write(s, *a, **k))))
    result = CliRunner().invoke(cli, ["apply", *map(str, photos), "-f", str(tiny_filter.folder), "-o",
                                      str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert written == [f"{p} -> {tmp_path / 'out' / (p.stem + '-tiny.jpg')}" for p in photos]
    # -q: nothing but errors
    result = CliRunner().invoke(cli, ["apply", *map(str, photos), "-q", "-f", str(tiny_filter.folder), "-o",
                                      str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0 and result.output == ""


def test_prefixes_in_colour_only_on_a_terminal_and_without_no_color(monkeypatch):
    import io

    from blogroto import ui

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ui.styled("error: x", Tty()).startswith("\x1b[")
    assert ui.styled("  warning: x", Tty()).startswith("  \x1b[")
    assert ui.styled("error: x", io.StringIO()) == "error: x"  # a pipe or file
    monkeypatch.setenv("NO_COLOR", "1")
    assert ui.styled("error: x", Tty()) == "error: x"
    assert ui.colour() is False
    assert ui.plural(1, "warning") == "1 warning" and ui.plural(0, "error") == "0 errors"
    assert ui.plural(1, "cache entry", "cache entries") == "1 cache entry"


def test_every_printing_command_takes_quiet_and_verbose():
    from blogroto.cli import COMMANDS, cli

    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "-q, --quiet" in result.output and "-v, --verbose" in result.output, name


def test_a_network_is_traced_once_for_every_image_size(tiny_filter):
    import numpy as np

    from blogroto.engine.stylize import StyleOptions, Stylizer

    s = Stylizer()
    rng = np.random.default_rng(0)
    for h, w in ((20, 24), (12, 16), (33, 17)):
        s.stylize_array(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), tiny_filter, StyleOptions(max_size=0))
    assert s.network(tiny_filter)._whole.experimental_get_tracing_count() == 1


def test_log_level_shows_blogroto_info_messages():
    """`--log-level info` puts blogroto's own log on stderr: without a handler Python shows warnings
    only, and what a clip's frames ran in (INFO) reached nobody."""
    from blogroto.cli import cli

    logger = logging.getLogger("blogroto")
    saved = (logger.level, logger.handlers[:], logger.propagate)
    try:
        assert CliRunner().invoke(cli, ["--log-level", "info", "--help"]).exit_code == 0
        assert logger.level == logging.INFO and len(logger.handlers) == 1
        stream = io.StringIO()
        logger.handlers[0].setStream(stream)
        logging.getLogger("blogroto.engine.stylize").info("wave.gif: frames in bfloat16")
        logging.getLogger("blogroto.engine.stylize").debug("not at info")
        assert stream.getvalue() == "INFO blogroto.engine.stylize: wave.gif: frames in bfloat16\n"
        assert CliRunner().invoke(cli, ["--log-level", "loud", "--help"]).exit_code == 2  # a clear refusal
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]
