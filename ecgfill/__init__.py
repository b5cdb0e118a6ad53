"""ecgfill: reconstruct complete 12-lead ECGs from reduced-lead recordings."""

__version__ = "0.1.0"
