"""Models built from kiln layers and Python plugins.

Each model lives in a subpackage (`kiln.models.llama`) that imports only on
demand: `import kiln` never imports Triton or transformers.
"""
