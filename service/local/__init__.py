"""Starting the real servers the stack needs on one machine: for `samsvc up` and the tests."""
