"""fxmm.engine"""
