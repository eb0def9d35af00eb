"""Request and response models of the churn API."""
