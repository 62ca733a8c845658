"""d4e.face"""
