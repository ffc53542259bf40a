"""What the forkserver that CPU pool workers fork from imports once, before any fork.

torch, transformers' model and tokenizer stack and the job code: a worker forked
after these starts its first job at once instead of importing them itself (a
few seconds of CPU each, on the same cores the other workers train on). Nothing
here touches CUDA or starts a thread, which a fork could not carry over.

The server ignores SIGTERM, as the workers do: a SIGTERM sent to the run's
process group is the driver's to handle (it stops the workers), and a server
killed by it would take the workers' exit statuses with it. It still exits
when the driver does (multiprocessing closes its end of the server's pipe).
"""

from __future__ import annotations

import signal

from core.run.executors.execute import JobRunner  # noqa: F401
from core.training import ntk, point  # noqa: F401
from core.training.models import warm_imports

signal.signal(signal.SIGTERM, signal.SIG_IGN)
warm_imports()
