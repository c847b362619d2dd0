"""Suite `memory_overhead`: optimizer-state bytes, peak step memory and step time on BERT and ResNet-50."""

from .suite import SUITE, MemoryOverheadSuite

__all__ = ["SUITE", "MemoryOverheadSuite"]
