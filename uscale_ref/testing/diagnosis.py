"""The likely-mistake catalogue under its first name: :mod:`uscale_ref.verdict.diagnosis`."""

from ..verdict.diagnosis import MISTAKES, NO_CAUSE, diagnose

__all__ = ["MISTAKES", "NO_CAUSE", "diagnose"]
