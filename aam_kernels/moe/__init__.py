"""Top-k mixture-of-experts MLP head: routing, expert MLP and combine (the formula: ``reference.py``)."""
