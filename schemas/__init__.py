"""The JSON Schemas netc ships: network.schema.json (generated from spec/schema.py) and
plan.schema.json."""
