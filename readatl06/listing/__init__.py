"""``readatl06 list``: the selected granules, by file name only (:mod:`.command`)."""
