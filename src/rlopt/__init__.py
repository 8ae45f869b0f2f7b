"""rlopt: a reference pipeline for evaluating learned optimizers in reinforcement learning."""

__version__ = "0.1.0"
