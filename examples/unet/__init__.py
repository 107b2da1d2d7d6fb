"""U-Net training example for segloss_jax (see README.md)."""
