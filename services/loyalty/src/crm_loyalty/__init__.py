"""CRM loyalty service: Membership tiers and the points ledger."""
