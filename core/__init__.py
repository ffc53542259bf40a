"""The lensllm-tui engine: data, models, training, NTK, laws, selection, store.

Nothing here imports textual or typer; the front ends in lensllm_tui/ consume
this package's events and results.
"""

__version__ = "0.1.0"
