"""Housekeeping inside the orchestrator: log retention and disk-pressure cleanup (see
docs/services/housekeeping.md). The orchestrator's main starts `housekeeping_task`."""

from codex_broker.orchestrator.housekeeping.config import HousekeepingSettings
from codex_broker.orchestrator.housekeeping.task import Housekeeper, disk_free_bytes, housekeeping_task

__all__ = ["Housekeeper", "HousekeepingSettings", "disk_free_bytes", "housekeeping_task"]
