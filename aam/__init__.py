"""Attention All Microbes: transformer regression on 16S rRNA amplicon data."""

__version__ = "0.1.0"
