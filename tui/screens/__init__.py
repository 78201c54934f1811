"""The dashboard's screens, one per module, and what their keys ask for (`Controls`)."""

from ._confirm import ConfirmScreen
from ._controls import Controls, worker_key
from ._dead_letter import DeadLetterScreen
from ._deck import DeckScreen
from ._detail import DetailScreen
from ._help import HelpScreen, Section
from ._payload import PayloadScreen
from ._run import RunScreen

__all__ = [
    "ConfirmScreen",
    "Controls",
    "DeadLetterScreen",
    "DeckScreen",
    "DetailScreen",
    "HelpScreen",
    "PayloadScreen",
    "RunScreen",
    "Section",
    "worker_key",
]
