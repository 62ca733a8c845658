"""Training of the renderer prior (and, later, actor adaptation)."""
