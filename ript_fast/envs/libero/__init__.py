"""LIBERO's wing of ript_fast.envs (needs `bash scripts/install_libero.sh`): LIBERO made importable offline
(setup.py), its suites and tasks (suites.py), each task's model and goal compiled for the engine (compiler.py,
goals.py), the vector env (vec_env.py), demo files (demos.py) and LIBERO's own env for equivalence checks
(reference.py)."""
