"""One model of a tenant (and, later, an agreement): the source of the CRDs, the CLI and validation."""
