"""The Asterisk lab: a real Asterisk 22 in a Debian-testing chroot, driven over AMI.

Used by the integration tests and by the demo (``python -m tests.lab.demo``).
"""
