"""The churn service's use cases: scoring (``scoring``), the event batches (``events``), merges
and erasure (``merges``), the reads (``queries``) and the refit (``refit``). Each takes a unit of
work (or, for work in several transactions, a callable opening them) and plain values, and raises
``crm_shared.errors``; none commits except where it opens its own units of work."""
