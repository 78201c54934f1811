"""The dashboard's screens, one per module."""

from ._confirm import ConfirmScreen
from ._deck import DeckScreen
from ._detail import DetailScreen
from ._help import HelpScreen, Section
from ._payload import PayloadScreen

__all__ = ["ConfirmScreen", "DeckScreen", "DetailScreen", "HelpScreen", "PayloadScreen", "Section"]
