"""Anatomy tables: landmark names and groupings, one module per family. Pure data, no torch."""
