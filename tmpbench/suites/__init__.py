"""The suite core: the suite API (:mod:`~tmpbench.suites.core`: YAML specs with their traits,
items, hashing, ``load_suite``) and the on-disk image layouts (:mod:`~tmpbench.suites.layout`).

The suites themselves (one YAML each, plus one loader per file format) live in the top-level
``suites`` package and are found through the ``SUITES`` registry (:mod:`tmpbench.catalog`) and each
YAML's ``loader: "module:attr"``; tmpbench never imports ``suites`` (an import contract). Code asks
a suite's traits (``benchmark``, ``language``, ``layout``, ``world``), never its name.
"""
