"""Training tests share the session's tiny committed pair partition (tests/support/pairs_fixture.py) and
quality grid (tests/support/quality_grid.py)."""

from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (a fixture, used by name)
from tests.support.quality_grid import grid_root  # noqa: F401 (a fixture, used by name)
