"""Lightning glue: :mod:`vosc.lit.vos_module` (VOS training), :mod:`vosc.lit.callbacks` (EMA, throughput,
mask images, atomic checkpoints). Import the submodules directly; this package imports nothing eagerly."""
