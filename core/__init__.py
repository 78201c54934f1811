"""jobdeck's engine: a trio orchestrator for background workers.

Everything public is re-exported here; the private modules hold one concern each.
"""

from ._circuit import CircuitEvent, CircuitState, circuit_transition
from ._config import JobdeckConfig, WorkerRegistration, import_function, load_config, parse_config
from ._context import JobContext
from ._coordinator_local import LocalCoordinator
from ._eligibility import Lifecycle, format_seconds
from ._errors import (
    ConfigError,
    JobdeckError,
    LeaseLost,
    NotRunning,
    StoreError,
    StoreInUse,
    StoreRejected,
    StoreUnavailable,
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
from ._snapshot import OrchestratorSnapshot, OrchestratorState, WorkerSnapshot, WorkerStatus
from ._spec import Mode, OrchestratorConfig, Priority, WorkerSpec
from ._sqlite import SQLiteStore
from ._store import Coordinator, DeadLetterDraft, Store
from ._store_memory import MemoryStore

__all__ = [
    "AttemptFailed",
    "Circuit",
    "CircuitEvent",
    "CircuitState",
    "ConfigError",
    "ControlFailed",
    "Coordinator",
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
    "LeaseLost",
    "Lifecycle",
    "LocalCoordinator",
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
    "OrchestratorState",
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
    "StoreRejected",
    "StoreUnavailable",
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
    "WorkerStatus",
    "circuit_transition",
    "dependency_order",
    "format_seconds",
    "graph_problems",
    "import_function",
    "load_config",
    "parse_config",
]
