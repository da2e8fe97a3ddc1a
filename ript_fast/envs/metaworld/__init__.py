"""MetaWorld's wing of ript_fast.envs: the task specs (tasks.py) compiled for the engine (spec_compiler.py), MetaWorld's
own env and the shared models (task_env.py), the vector env (vec_env.py) and the scripted experts (experts.py)."""
