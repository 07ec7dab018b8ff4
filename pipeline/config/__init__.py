"""Parameters: how they are declared and validated, and every entry point's config."""
