"""``python -m lensllm_tui``: the same entry point as the ``lensllm-tui`` command."""

from lensllm_tui.entry import main

if __name__ == "__main__":
    main()
