"""The AlexNet baseline trainer that validates a dataset (issue 7)."""
