"""The decoder engine: fair, bounded scheduling of decode work over a few threads."""
