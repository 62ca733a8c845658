"""Small shared utilities: shape checks, atomic files, checkpoints, configs."""
