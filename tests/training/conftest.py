"""Training tests share the session's tiny committed pair partition (tests/support/pairs_fixture.py); the
quality grid (tests/support/quality_grid.py) is a fixture of tests/conftest.py (CLI and DAG tests use it too)."""

from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (a fixture, used by name)
