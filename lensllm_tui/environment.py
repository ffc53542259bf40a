"""The environment variables lensllm-tui reads, with what each changes.

Listed once here for ``--help`` (the epilog) and checked against the source and
the README by tests/ui/test_environment.py: a new ``os.environ`` read in core/ or
lensllm_tui/ that is not listed here fails that test.
"""

from __future__ import annotations

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (
        "LENSLLM_TUI_CACHE",
        "the tool's cache: the tiny:NAME zoo models (zoo/) and datasets' Arrow copies of local"
        " data files (datasets/); default ~/.cache/lensllm-tui",
    ),
    (
        "HF_HOME",
        "the Hugging Face cache root (default ~/.cache/huggingface): cached models listed by "
        "`lensllm-tui models` and loaded by id, downloaded datasets",
    ),
    ("HF_HUB_CACHE", "the hub's model cache inside it (default $HF_HOME/hub)"),
    (
        "HF_HUB_OFFLINE",
        "1: never contact the hub; models and datasets come from the cache only",
    ),
    ("HF_ENDPOINT", "the hub address probed before downloading (default https://huggingface.co)"),
    ("HF_TOKEN", "Hugging Face access token, for gated or private models and datasets"),
    ("CUDA_VISIBLE_DEVICES", "which GPUs torch sees (--device cuda:N counts among them)"),
    (
        "OMP_WAIT_POLICY",
        "how torch's CPU threads wait between operations: unset, OpenMP's default (they spin a"
        " while: fastest on an otherwise idle machine); PASSIVE (they sleep: several times"
        " faster when other jobs share the CPUs); pool workers use PASSIVE unless it is set",
    ),
    (
        "RAY_ADDRESS",
        "the Ray cluster `--executor ray` joins when `--ray-address` is not given "
        "(unset: a local instance)",
    ),
    (
        "LENSLLM_TUI_FAULTS",
        "fault drills for the executors: `oom=MODEL@SIZE` (a CUDA out-of-memory error), "
        "`kill=MODEL@SIZE` (SIGKILL of the worker), `write=MODEL@SIZE` (a 4 MiB scratch file "
        "under the cache) and `slow=MODEL@SIZE` (a straggler held 3 s) on a point's first "
        "attempt",
    ),
    (
        "COLUMNS",
        "terminal width for the headless output; without it, logs (not a terminal) are 120 wide",
    ),
    ("NO_COLOR", "any value: plain text without colours"),
)
"""(name, what it changes), in the order ``--help`` lists them."""


def epilog() -> str:
    """The variables as help text, one a line (typer's rich help keeps single line breaks)."""
    lines = "\n".join(f"  {name}: {meaning}" for name, meaning in ENVIRONMENT)
    return f"Environment variables:\n{lines}"
