"""The evaluation app (``v4e eval``): regression-test a voice agent on EV-charging support
calls. Tasks are data (:mod:`libv4e_apps.eval.tasks`, the built-in suite in ``suite/``), each
episode runs in a sandbox of its own on a simulated clock (:mod:`libv4e_apps.eval.episode`), a
simulated driver plays the other half (:mod:`libv4e_apps.eval.driver`), agents sit behind one
interface (:mod:`libv4e_apps.eval.agents`) and the runner reports pass^k
(:mod:`libv4e_apps.eval.runner`). See docs/evaluation.md."""
