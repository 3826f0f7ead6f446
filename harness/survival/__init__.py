"""Do hidden canaries survive real pretraining pipelines? Extractors, filters, dedup, tables."""
