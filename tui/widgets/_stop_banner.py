"""The banner shown while jobdeck stops: runs in flight, grace left, how to force."""

from __future__ import annotations

import math

from textual.widgets import Static


class StopBanner(Static):
    """"stopping… 3 runs in flight, 24 s left": hidden until a stop begins."""

    DEFAULT_CSS = """
    StopBanner {
        height: 1;
        display: none;
        background: $warning;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    StopBanner.-stopping {
        display: block;
    }
    StopBanner.-forced {
        background: $error;
    }
    """

    def show(self, *, in_flight: int, seconds_left: float | None, forced: bool) -> None:
        """Show how the stop is going; `forced` after a second quit.

        `seconds_left` is the core's count of the grace (`grace_left_s`): None until the
        core has begun to count it, a moment after the stop was asked for.
        """
        self.add_class("-stopping")
        self.set_class(forced, "-forced")
        runs = f"{in_flight} run{'s' * (in_flight != 1)} in flight"
        if forced:
            text = f"forcing stop… interrupting {runs}; they are recorded and re-queued"
        elif seconds_left is None:
            text = f"stopping… {runs}  (press q again to force)"
        elif seconds_left > 0:
            left = math.ceil(seconds_left)
            text = f"stopping… {runs}, {left} s left  (press q again to force)"
        else:
            text = f"stopping… grace over, cancelling {runs}"
        self.update(text, layout=False)  # one line across the screen: a repaint will do
