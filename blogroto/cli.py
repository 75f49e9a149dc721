"""The `blogroto` command line.

Each sub-command lives in its own module under `blogroto.commands` and is imported only when it
is run, so `blogroto build` on a warm cache never pays for importing TensorFlow.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from blogroto import __version__, ui
from blogroto.errors import BlogrotoError, ConfigError

BACKENDS = ("auto", "tensorflow", "torch", "jax")  # blogroto.engine.runtime's, without importing the engine

# command name -> module in blogroto.commands exposing a click command called `command`
COMMANDS = {
    "apply": "apply",
    "train": "train",
    "import": "importer",
    "filters": "filters",
    "build": "build",
    "gc": "gc",
    "watch": "watch",
    "serve": "serve",
    "catalog": "catalog",
    "preview": "preview",
    "init": "init",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        module_name = COMMANDS.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"blogroto.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"blogroto.commands.{module_name}":
                return None  # command listed but not built in this version
            raise
        return module.command


def _select_backend(ctx, param, value):
    if value and not ctx.resilient_parsing:
        from blogroto.engine.runtime import select_backend

        try:
            select_backend(value)
        except BlogrotoError as exc:
            raise click.BadParameter(str(exc), ctx, param) from exc
    return value


def _print_version(ctx, param, value):
    """The version, and the backend and device filters run on (imports the backend: a few seconds)."""
    if not value or ctx.resilient_parsing:
        return
    from blogroto.engine.runtime import describe

    click.echo(f"blogroto, version {__version__}")
    click.echo(f"engine: {describe()}")
    ctx.exit()


LOG_LEVELS = ("warning", "info", "debug")


def _set_log_level(ctx, param, value):
    """blogroto's own log (the `blogroto.*` loggers) on stderr at `value`. Without it Python's
    last-resort handler shows warnings only: what a clip's frames ran in (INFO) reached nobody."""
    if value and not ctx.resilient_parsing:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("blogroto")
        logger.handlers[:] = [handler]
        logger.propagate = False  # once, here: absl (TensorFlow) puts its own handler on the root logger
        logger.setLevel(value.upper())
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--backend", type=click.Choice(BACKENDS), is_eager=True, expose_value=False, callback=_select_backend,
              help="Keras backend that runs the filters (default: KERAS_BACKEND, else auto: "
                   "the fastest installed on a CPU, TensorFlow first).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), is_eager=True, expose_value=False,
              callback=_set_log_level, help="Show blogroto's log on stderr from this level up (default: "
                                            "warnings only).")
@click.option("--version", is_flag=True, is_eager=True, expose_value=False, callback=_print_version,
              help="Show the version and the backend and device filters run on, then exit.")
def cli():
    """Neural texture transfer ("algorithmic rotoscope") for Jekyll-style blogs."""


def _print_partial(exc: BlogrotoError) -> None:
    """The documents that failed before a fault stopped the build (path: reason, one a line):
    without them a full disk would show only the fault, and the failed posts only with -v."""
    report = getattr(exc, "partial_report", None)
    for message in getattr(report, "errors", ()) or ():
        if message != str(exc):
            ui.error(message)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="blogroto", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        _print_partial(exc)
        ui.error(str(exc))
        sys.exit(2)
    except BlogrotoError as exc:
        _print_partial(exc)
        ui.error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)
