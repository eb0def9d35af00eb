"""Request and response models of the gateway API."""
