"""Profile service: the customer archive and the customer-360 source."""
