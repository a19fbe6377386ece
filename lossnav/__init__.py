"""lossnav, the application: the command line (:mod:`lossnav.cli`), validation against the
collocation reference (:mod:`lossnav.validation`), the paper's figures (:mod:`lossnav.figures`),
the report (:mod:`lossnav.report`) and network training (:mod:`lossnav.training`).

The libraries it is built on: :mod:`ocp` (the engine), :mod:`problems` (the scenarios) and
:mod:`learning_rules` (the torch optimizers). Imports run one way, lossnav → problems →
{learning_rules, ocp}; docs/architecture.md draws the house.
"""
__version__ = "0.1.0"
