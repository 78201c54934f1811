"""jobdeck's benchmarks: `python -m bench SUBCOMMAND [--json] [--quick]` (see __main__)."""
