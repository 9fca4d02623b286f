"""Converters from the official chest X-ray dataset layouts (and the synthetic phantoms) to
the fxmm annotation format."""
