"""A module whose import fails, as a user's buggy worker module would."""

raise RuntimeError("database URL not set")


async def never_reached(ctx: object) -> None:
    """Never defined: the import fails first."""
