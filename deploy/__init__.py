"""The deployments in prefect.yaml, as objects: for `greenapi-migrate serve` and for the tests."""
