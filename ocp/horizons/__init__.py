"""The horizon strategies around the one-window primitive (:mod:`ocp.nlp.window`).

:mod:`.pipeline` is the private core that :func:`ocp.solve` runs after validating its options
once: finite horizons (:mod:`.finite`, with :mod:`.mesh_refinement` and the long-horizon split
:mod:`.long_horizon`) and the infinite horizon (:mod:`.infinite`: an ordered list of strategies,
among them the current-value bridge :mod:`.current_value`, the LQ tail at the rest point
:mod:`.rest_point` on the one discounted-LQ core :mod:`.lq`, growing optima :mod:`.growing` and
the policy integration :mod:`.policy`). Every layer calls down; none calls the public solve.
"""
