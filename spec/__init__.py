"""Pass 1 and 2 of netc: reading a spec (load.py), checking it against the schema (validate.py,
schema.py), expanding blocks (expand.py), and the located errors all of them raise (errors.py)."""
