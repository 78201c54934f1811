"""The dashboard's widgets, one per module."""

from ._activity_feed import ActivityFeed
from ._cluster_bar import ClusterBar
from ._dead_letter_detail import DeadLetterDetail
from ._dead_letter_table import DeadLetterTable
from ._filter_bar import FilterBar
from ._flash_line import Flash, FlashLine, Severity
from ._history_table import HistoryTable
from ._key_bar import KeyBar
from ._keyed_table import KeyedTable
from ._log_view import LEVELS as LOG_LEVELS
from ._log_view import LogView
from ._node_table import NodeDetail, NodeTable
from ._status_bar import StatusBar
from ._stop_banner import StopBanner
from ._worker_detail import WorkerDetail
from ._worker_table import WorkerTable

__all__ = [
    "LOG_LEVELS",
    "ActivityFeed",
    "ClusterBar",
    "DeadLetterDetail",
    "DeadLetterTable",
    "FilterBar",
    "Flash",
    "FlashLine",
    "HistoryTable",
    "KeyBar",
    "KeyedTable",
    "LogView",
    "NodeDetail",
    "NodeTable",
    "Severity",
    "StatusBar",
    "StopBanner",
    "WorkerDetail",
    "WorkerTable",
]
