"""Clinical parameters from landmarks, one module per family (pure Python, no torch)."""
