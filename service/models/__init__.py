"""The registry of every ORM model module.

Importing this package imports each model module, so that ``Base.metadata``
holds every table (Alembic's env.py and the tests rely on it). Each model's
owner adds one import line here.
"""

from ..auditlog import models as auditlog
from . import accounts, exports, recipients, statements

__all__ = ["accounts", "auditlog", "exports", "recipients", "statements"]
