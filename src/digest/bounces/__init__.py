"""Bounces, complaints and mailed unsubscribe requests: parse them, read them from IMAP."""

from digest.bounces.imap import IMAPOptions, Mailbox
from digest.bounces.parse import Failure, Kind, Report, Severity, classify, parse_report

__all__ = [
    "Failure",
    "IMAPOptions",
    "Kind",
    "Mailbox",
    "Report",
    "Severity",
    "classify",
    "parse_report",
]
