"""Request and response models of the loyalty API."""
