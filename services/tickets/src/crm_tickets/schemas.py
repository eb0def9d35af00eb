"""Request and response models of the tickets API."""
