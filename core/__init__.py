"""jobdeck's engine: a trio orchestrator for background workers.

Everything public is re-exported here; the private modules hold one concern each.
"""

from ._circuit import CircuitEvent, CircuitState, circuit_transition
from ._config import JobdeckConfig, WorkerRegistration, import_function, load_config, parse_config
from ._context import JobContext
from ._eligibility import Lifecycle, format_seconds
from ._errors import (
    ConfigError,
    JobdeckError,
    NotRunning,
    StoreError,
    StoreInUse,
    UnknownDeadLetter,
    UnknownWorker,
)
from ._events import (
    AttemptFailed,
    ControlFailed,
    DeadLetterDeleted,
    DeadLettered,
    DeadLetterReplayed,
    Event,
    EventBus,
    HealthChanged,
    LogLine,
    LogRecordView,
    OrchestratorPaused,
    OrchestratorResumed,
    OrchestratorStarted,
    OrchestratorStopped,
    OrchestratorStopping,
    RunFailed,
    RunInterrupted,
    RunStarted,
    RunSucceeded,
    Subscription,
    TriggerAccepted,
    WorkerDisabled,
    WorkerEnabled,
)
from ._graph import dependency_order, graph_problems
from ._health import Health, HealthReport
from ._orchestrator import Orchestrator
from ._records import (
    Circuit,
    DeadLetter,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)
from ._snapshot import OrchestratorSnapshot, WorkerSnapshot
from ._spec import Mode, OrchestratorConfig, Priority, WorkerSpec
from ._sqlite_store import SQLiteStore
from ._store import DeadLetterDraft, MemoryStore, Store

__all__ = [
    "AttemptFailed",
    "Circuit",
    "CircuitEvent",
    "CircuitState",
    "ConfigError",
    "ControlFailed",
    "DeadLetter",
    "DeadLetterDeleted",
    "DeadLetterDraft",
    "DeadLetterReplayed",
    "DeadLettered",
    "Event",
    "EventBus",
    "Health",
    "HealthChanged",
    "HealthReport",
    "JobContext",
    "JobdeckConfig",
    "JobdeckError",
    "Lifecycle",
    "LogLine",
    "LogRecordView",
    "MemoryStore",
    "Mode",
    "NotRunning",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorPaused",
    "OrchestratorResumed",
    "OrchestratorSnapshot",
    "OrchestratorStarted",
    "OrchestratorStopped",
    "OrchestratorStopping",
    "Priority",
    "RunFailed",
    "RunInterrupted",
    "RunRecord",
    "RunStarted",
    "RunStatus",
    "RunSucceeded",
    "SQLiteStore",
    "Source",
    "Store",
    "StoreError",
    "StoreInUse",
    "StoredState",
    "Subscription",
    "Trigger",
    "TriggerAccepted",
    "UnknownDeadLetter",
    "UnknownWorker",
    "WorkerDisabled",
    "WorkerEnabled",
    "WorkerRegistration",
    "WorkerSnapshot",
    "WorkerSpec",
    "WorkerState",
    "circuit_transition",
    "dependency_order",
    "format_seconds",
    "graph_problems",
    "import_function",
    "load_config",
    "parse_config",
]
