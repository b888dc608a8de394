"""``python -m uscale_ref``: the same as the ``uscale-ref`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
