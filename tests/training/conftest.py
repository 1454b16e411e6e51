"""Training tests share the session's tiny committed pair partition (tests/support/pairs_fixture.py)."""

from tests.support.pairs_fixture import tiny_pairs  # noqa: F401 (a fixture, used by name)
