"""Metrics: DAVIS J&F (:mod:`vosc.metrics.jf`), rate and PSNR (:mod:`vosc.metrics.rate`), rate–accuracy
curves and Bjøntegaard deltas (:mod:`vosc.metrics.rd`)."""
