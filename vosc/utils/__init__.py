"""Small training utilities: optimiser parameter groups and learning-rate schedules."""
