"""Worker functions that config tests point `fn` at."""

NOT_CALLABLE = 3


async def ok(ctx: object) -> None:
    """An async worker that does nothing."""


def sync_ok(ctx: object) -> None:
    """A plain worker that does nothing (runs in a thread)."""
