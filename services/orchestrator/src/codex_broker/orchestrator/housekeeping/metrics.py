"""Metrics of retention and disk cleanup (labels: mode and kind only, both bounded)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DISK_CLEANUP_RUNS = Counter(
    "cb_disk_cleanup_runs_total", "Disk cleanups started because free space was low", ["mode"]
)
DISK_CLEANUP_BYTES = Counter("cb_disk_cleanup_bytes_total", "Bytes deleted by disk cleanup")
DISK_CLEANUP_ITEMS = Counter(
    "cb_disk_cleanup_items_total", "Log files and session directories deleted by disk cleanup", ["kind"]
)
DISK_FREE_BYTES = Gauge("cb_disk_free_bytes", "Free bytes on the DATA_ROOT filesystem at the last check")
LOG_RETENTION_FILES = Counter("cb_log_retention_files_removed_total", "Log files removed by retention")
LOG_RETENTION_BYTES = Counter(
    "cb_log_retention_bytes_removed_total", "Bytes of log files removed by retention"
)
HOUSEKEEPING_ERRORS = Counter("cb_housekeeping_errors_total", "Housekeeping rounds that failed", ["step"])
