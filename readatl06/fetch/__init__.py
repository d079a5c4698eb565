"""``readatl06 fetch``: verified, resumable downloads over the ranks (:mod:`.download`, :mod:`.command`)."""
