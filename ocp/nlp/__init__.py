"""The one NLP: direct collocation of a discounted OCP and the one-window solve.

Node mathematics (:mod:`.collocation`), meshes and IPOPT defaults (:mod:`.mesh`), the time maps
of finite and infinite horizons (:mod:`.time_maps`), the element cost with its exact derivatives
(:mod:`.element_cost`), the linear constraint matrix (:mod:`.constraint_matrix`), optional path
rows (:mod:`.path_constraints`), the transcription built once per problem structure
(:mod:`.transcription`), initial guesses (:mod:`.guesses`), KKT sensitivities
(:mod:`.sensitivity`), raw solutions as Trajectories (:mod:`.solution`) and the primitive every
strategy calls: one NLP on one window (:mod:`.window`).
"""
