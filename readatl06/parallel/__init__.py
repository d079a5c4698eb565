"""MPI lives here alone: the communicator and abort-on-error, the dynamic hand-out, numeric
exchanges, the schedule, progress over all ranks. ``comm`` is passed in; one rank always works."""
