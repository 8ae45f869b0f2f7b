import os

# Tests must not share a compilation cache with the user's runs, and must not need one.
os.environ.setdefault("RLOPT_JAX_CACHE_DIR", "")
