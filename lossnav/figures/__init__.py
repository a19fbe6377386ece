"""The paper's figures (:mod:`~lossnav.figures.paper`: Figs. 1-3) and the studies' figures
(:mod:`~lossnav.figures.belief_adam`, :mod:`~lossnav.figures.weight_uncertainty`,
:mod:`~lossnav.figures.langevin`). matplotlib runs headless (Agg)."""
