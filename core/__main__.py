"""`python -m jobdeck`: the same as the `jobdeck` command.

The command plugs the dashboard (`jobdeck.tui`) into the engine's command line; the
engine's own modules never import it.
"""

from jobdeck.tui.cli import main

raise SystemExit(main())
