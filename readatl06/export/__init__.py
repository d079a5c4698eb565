"""``readatl06 export``: a GeoParquet 1.1 points table: its input as one stream (:mod:`.plan`), one
batch to columns (:mod:`.batch`), the parallel writer (:mod:`.writer`), the command line (:mod:`.command`)."""
