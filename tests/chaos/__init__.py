"""The chaos suite (`make chaos`): several workers, kill -9, a PostgreSQL restart, an SMTP
outage, then a check that nothing was lost or duplicated. See tests/chaos/README.md."""
