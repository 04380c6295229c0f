"""What Prefect holds about each instance, apart from the runs: its Block (credentials), what runs remember
(Variables), its one-run-at-a-time lock, how runs find it, and how its events name it.

The task steps are in ``tasks/``; the sweep, the runbook, the receiver and the CLI read and write these.
"""

from instances.blocks import GreenApiInstance, GreenApiPartner
from instances.lookup import resolve_credentials

__all__ = ["GreenApiInstance", "GreenApiPartner", "resolve_credentials"]
