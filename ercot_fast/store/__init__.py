"""The memory-resident price store: ``model`` (Dataset, Store), ``load``
(price files -> merged, sorted UTC arrays) and ``sources`` (where the files
come from)."""
