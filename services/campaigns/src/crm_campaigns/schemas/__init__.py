"""Request and answer bodies of the campaigns API, one module per resource."""
