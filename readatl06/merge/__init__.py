"""``readatl06 merge`` and ``reduce --merge``: one collectively written parallel-HDF5 file: its layout
(:mod:`.layout`), the points moved between ranks (:mod:`.redistribute`), the writer (:mod:`.writer`),
the command line (:mod:`.command`)."""
