"""`python tests/reliability/fake_cli.py ARGS`: the blogroto CLI with the network swapped for a
colour inversion (tests.reliability.kit.FakeStylizer), for subprocess tests about everything but
the network: concurrency, signals, file systems. Never imports TensorFlow.

BLOGROTO_TEST_FAKE_DELAY=SECONDS makes each image take that long (to widen race windows).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.reliability.kit import install_fake_stylizer  # noqa: E402

install_fake_stylizer()

from blogroto.cli import main  # noqa: E402

main(sys.argv[1:])
