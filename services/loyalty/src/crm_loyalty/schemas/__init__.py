"""Request and response models of the loyalty API (``*Create`` / ``*Read``), one module per
resource like ``api/``: ``accounts`` (balances, ledger, redemptions, adjustments, the programme,
jobs, reports and referrals), ``rewards`` (the catalogue) and ``coupons`` (pools, codes, validation)."""
