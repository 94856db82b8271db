"""pbxbridge: answer-time, abandonment and incident delivery for 112 calls on Asterisk."""

__version__ = "0.1.0"
