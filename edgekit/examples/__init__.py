"""Example models to try edgekit on without bringing your own (see `mnist1d_teacher`)."""
