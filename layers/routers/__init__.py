"""HTTP routes of the layers package; thin: parse, check access, call a module, shape output."""
