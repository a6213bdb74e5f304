"""Fixtures of the unit tests."""

from tests.support.bulk_env import env

__all__ = ["env"]
