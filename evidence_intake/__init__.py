"""evidence-intake: sealed evidence referrals for international investigators.

The distribution installs one import name, ``evidence_intake``; the top-level
folders ``crypto/``, ``audit/``, ``schemas/`` and ``service/`` of the repository
are its sub-packages (see the README's layout section).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evidence-intake")
except PackageNotFoundError:  # running from a tree that was never installed
    __version__ = "0.0.0+unknown"
