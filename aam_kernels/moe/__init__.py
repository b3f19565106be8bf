"""Top-k mixture-of-experts MLP head: routing, expert MLP and combine (see DESIGN.md section 3.3)."""
