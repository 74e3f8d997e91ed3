"""Build nodes: another machine serving a gangline server by leasing its runs (``gangline node``)."""
