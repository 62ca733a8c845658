"""d4e.post"""
