"""``readatl06 xover``: crossovers of ascending and descending tracks: the pure core (:mod:`.crossings`),
tiles over ranks (:mod:`.run`), the output files (:mod:`.write`), the command line (:mod:`.command`)."""
