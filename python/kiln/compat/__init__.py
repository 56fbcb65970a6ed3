"""Compatibility layers: code written for other APIs, ported by changing imports."""
