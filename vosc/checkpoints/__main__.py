"""``python -m vosc.checkpoints verify FIXTURE_DIR``: see :func:`vosc.checkpoints.official.main`."""

from vosc.checkpoints.official import main

raise SystemExit(main())
