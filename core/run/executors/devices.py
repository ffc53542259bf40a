"""Which devices a run can spread over, and how many workers that means.

Physical GPU ids come from the driver's own CUDA_VISIBLE_DEVICES when it is set
(a user who hands the run GPUs 2,3 gets workers pinned to 2 and 3, not 0 and 1),
else from torch's device count. Counting does not initialise CUDA in the driver.
"""

from __future__ import annotations

import os


def visible_gpus(device: str = "auto") -> list[str]:
    """Physical ids of the GPUs the run may use: none for ``cpu``, one for ``cuda:N``."""
    if device == "cpu":
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = (
        [x.strip() for x in env.split(",") if x.strip()]
        if env is not None
        else [str(i) for i in range(torch.cuda.device_count())]
    )
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        return ids[index : index + 1]
    return ids


def default_backend(device: str = "auto") -> str:
    """``pool`` on a box with more than one GPU for the run, else ``local``."""
    return "pool" if len(visible_gpus(device)) > 1 else "local"


def default_workers(device: str = "auto") -> int:
    """One worker per GPU; on a CPU-only run one per core (each then trains on one thread)."""
    gpus = visible_gpus(device)
    return len(gpus) if gpus else max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Torch threads for each CPU worker: as asked, else the cores shared out evenly."""
    if threads is not None:
        return max(1, threads)
    return max(1, (os.cpu_count() or 1) // max(1, workers))
