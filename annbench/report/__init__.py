"""Frames → figures, tables, pictures of neighbours and the HTML report."""
