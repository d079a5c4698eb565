"""``readatl06 reduce``: one granule in, tracks out (:mod:`.granule`); the run over ranks (:mod:`.run`);
the command line (:mod:`.command`)."""
