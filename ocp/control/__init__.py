"""Controllers and searches built on the engine: receding-horizon control and receding windows
(:mod:`.receding`), the trust-region planner (:mod:`.trust_region`), multistart global optima
(:mod:`.multistart`)."""
