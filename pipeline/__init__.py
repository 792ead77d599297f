"""synsetforge's pipeline: the command line, the stage runner, table schemas and the stages
that fetch and clean images (candidates, download, dedupe)."""
