"""Navigation environments: ``NavEnv`` (single) and ``NavVectorEnv`` (batched) over one ``NavCore``."""
