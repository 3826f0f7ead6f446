"""`tdp verify`: recompute every claim of a report from its data, its canary files, the protocol
records and (by default) the model, and say check by check what holds."""

from harness.verify.checks import RECOMPUTE_RTOL, Check, Verdict
from harness.verify.report import VerifyOptions, verify_report
from harness.verify.rescore import RESCORE_ATOL

__all__ = ["RECOMPUTE_RTOL", "RESCORE_ATOL", "Check", "Verdict", "VerifyOptions", "verify_report"]
