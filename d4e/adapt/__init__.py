"""d4e.adapt"""
