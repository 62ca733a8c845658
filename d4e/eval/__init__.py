"""d4e.eval"""
