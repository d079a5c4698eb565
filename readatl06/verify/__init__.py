"""``readatl06 verify``: every output of an OUTDIR checked against its run record, or a merged file
checked as far as it can be (:mod:`.check`); the command line (:mod:`.command`)."""
