"""Validation against the collocation reference: the cases of ``lossnav validate``
(:mod:`~lossnav.validation.cases`), the learning rules on them (:mod:`~lossnav.validation.rules`,
run by :mod:`~lossnav.validation.rule_runner`), the optimizer studies of App. H–I
(:mod:`~lossnav.validation.optimizer_studies`) and the SGD simulations of Kunin et al.
(:mod:`~lossnav.validation.sgd_simulation`)."""
