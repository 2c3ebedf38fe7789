"""ocfb-suite orchestration: Ray Tune sweeps, W&B tracking, summaries and the CLI around `ocfb`."""
