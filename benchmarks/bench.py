"""``python benchmarks/bench.py`` is ``uscale-ref bench``: see uscale_ref/tools/benchmark.py."""

from uscale_ref.tools.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
