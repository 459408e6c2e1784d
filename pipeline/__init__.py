"""Thin Typer commands, one per DVC stage: read a params section, call the library, write outputs."""
