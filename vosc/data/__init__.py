"""Data: sources → clip sampling → compression (codec, clip/sequence mode) → augmentation → VOSBatch.

Entry points: :class:`vosc.data.datamodule.VOSDataModule` (Hydra: ``conf/data/*.yaml`` with
``conf/codec/*.yaml`` as its ``compression``), :func:`vosc.data.synthetic.generate_synthetic`
(``python -m vosc.data.synthetic``).
"""
