"""One module per noun; Django names each command after its module (see flow-run.py for the hyphen)."""
