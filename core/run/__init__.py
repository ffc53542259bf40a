"""A run: the store, the records written to the run directory, and the runner that drives the policy and training as one stream of events."""
