"""What a solve returns and how it is checked, stored and drawn: :class:`.trajectory.Trajectory`,
its algebra (:mod:`.trajectory_algebra`: cut, shift, concatenate, integrals), paths given in closed
form (:mod:`.path`), the checks that do not trust the NLP (:mod:`.verification`), atomic files
(:mod:`.files`) and figures (:mod:`.plotting`)."""
