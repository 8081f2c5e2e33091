"""``python -m bench`` (``make bench``): the performance suite, see bench/suite.py."""

from bench.suite import main

main()
