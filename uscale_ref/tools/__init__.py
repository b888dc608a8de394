"""Tools around the reference that the op never imports: the benchmark of ``uscale-ref bench``."""
