"""Talking to a running service from the command line: client and rendering."""
