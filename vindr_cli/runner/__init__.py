"""The batch runner every stage uses: discovery, the Executor seam (executor.py), one stage
runner owning settings, journals, resume, renames, tallies and the summary (stage.py,
``run_stage``), atomic writes. Kept free of imports here so that importing a runner
module never pulls in the others."""
