"""d4e.nets"""
