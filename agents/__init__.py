"""Thin Faust agents: they move records between the broker and the pipeline."""
