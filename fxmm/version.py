"""Version of the fxmm package."""
__version__ = '0.1.0'
