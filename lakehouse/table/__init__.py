"""Table primitives: the catalog, table specs and their registry, refs, the one write path.

``catalog`` opens the Iceberg catalog; ``registry`` declares tables (schemas with keys,
partitioning, expectations) and discovers every domain's specs; ``writer`` is the single write
path (day writes, merges, lineage in snapshot properties) and ``streaming`` its streamed day
merge; ``refs`` moves branches and tags with ancestry checks; ``snapshots`` removes many
snapshots at once; ``keys`` checks key uniqueness; ``retry`` wraps catalog calls;
``bookkeeping`` holds the tables AURA keeps about itself; ``expectations`` declares expectation
suites.
"""
