"""monitor: watches the Swedish press for watchlist topics and alerts once per story."""

__version__ = "0.1.0"
