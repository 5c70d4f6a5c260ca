"""The batch runner every stage uses: discovery, a process pool with progress, a journal
for resume, atomic writes. See ``run_batch``."""
