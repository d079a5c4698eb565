"""``readatl06 demo``: synth -> reduce -> merge -> xover -> plot, no download (:mod:`.command`)."""
