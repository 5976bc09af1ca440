"""The one training path: TRL trainers under a matched budget, measured by one callback."""
