"""Model families: what each fixes (spec.py, catalog.py: plain data, no torch) and how its modules are built and
recognised from a checkpoint (sam1.py for `sam` and `tinyvit`, sam2.py for `sam2`)."""
