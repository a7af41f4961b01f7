"""Agents shipped with the package (``agent:<name>``), each with its command and log."""
