"""evidence-intake: sealed evidence referrals for international investigators.

The distribution installs one import name, ``evidence_intake``; the top-level
folders ``crypto/``, ``audit/``, ``schemas/`` and ``service/`` of the repository
are its sub-packages (see the README's layout section).
"""

# Kept in step with pyproject.toml by tests/unit/test_cli_dispatch.py; a literal
# rather than importlib.metadata, which costs tens of milliseconds per command.
__version__ = "0.1.0"
