"""Imported by the parsing children's fork server only (ingest/isolation.py): it builds the dedoc pipeline once,
so that every child starts with it."""

from ingest.parsing import warm_up

warm_up()
